"""The layer rules of ARCHITECTURE.md, checked on every module's imports (read with ast, nothing imported).

Layers, bottom to top: errors/defaults/version; network; geometry, files;
loading; backends; export; pipeline; ros, offline; commands; cli. A module
may import its own layer and the layers its row allows, never one above.
ROS message libraries appear only in ros/ and offline/; torch is never
imported at module level by the numpy layers.
"""
import ast

import pytest

from .paths import PACKAGE_DIR

PACKAGE = PACKAGE_DIR.name
BOTTOM = {'errors', 'defaults', 'version'}
#: layer -> the other layers of ours it may import (its own layer is always allowed)
ALLOWED = {
    'errors': set(), 'defaults': set(), 'version': set(),
    'network': BOTTOM,
    'geometry': BOTTOM,
    'files': BOTTOM,
    'loading': BOTTOM | {'network', 'files'},
    'backends': BOTTOM | {'loading', 'network', 'files', 'geometry'},
    'export': BOTTOM | {'backends', 'loading', 'network', 'files', 'geometry'},
    'pipeline': BOTTOM | {'backends', 'geometry', 'files'},
    'ros': BOTTOM | {'pipeline', 'backends', 'geometry', 'files'},
    'offline': BOTTOM | {'pipeline', 'backends', 'geometry', 'files'},
    'commands': BOTTOM | {'network', 'geometry', 'files', 'loading', 'backends', 'export', 'pipeline', 'offline'},
    'cli': BOTTOM | {'commands'},
    '__init__': BOTTOM | {'loading'},   # the package root: version and a lazy load_model
}
#: console-script shims (`ros2 run ... build_engine`, benchmarks) that hand their arguments to cli.main,
#: inside the function only; the one allowed upward import
CLI_SHIMS = {'commands.build_engine', 'commands.bench'}
ROS_LIBRARIES = {'rclpy', 'sensor_msgs', 'stereo_msgs', 'std_msgs', 'diagnostic_msgs', 'builtin_interfaces',
                 'rcl_interfaces', 'rosbags'}
ROS_LAYERS = {'ros', 'offline'}
NO_MODULE_LEVEL_TORCH = {'geometry', 'files', 'pipeline', 'ros'}


def layer_of(relative_module):
    """'pipeline.frame_stage' -> 'pipeline'; 'cli' -> 'cli'; '' (the package) -> '__init__'."""
    return relative_module.split('.')[0] if relative_module else '__init__'


def modules():
    """(dotted name relative to the package, path) of every module of the package."""
    for path in sorted(PACKAGE_DIR.rglob('*.py')):
        parts = list(path.relative_to(PACKAGE_DIR).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        yield '.'.join(parts), path


def imports(relative_module, path):
    """[(imported absolute dotted name, line, at module level)] of one source file."""
    tree = ast.parse(path.read_text(encoding='utf-8'), str(path))
    is_package = path.name == '__init__.py'
    own = [PACKAGE] + (relative_module.split('.') if relative_module else [])
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        at_module_level = id(node) in top_level
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, at_module_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = own if is_package else own[:-1]
                base = base[:len(base) - (node.level - 1)]
                prefix = '.'.join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            if node.module is None or prefix == PACKAGE:
                # `from .. import defaults`: each name is a module of ours
                found += [(f'{prefix}.{alias.name}', node.lineno, at_module_level) for alias in node.names]
            else:
                found.append((prefix, node.lineno, at_module_level))
    return found


def violations():
    problems = []
    for relative_module, path in modules():
        layer = layer_of(relative_module)
        where = f'{path.relative_to(PACKAGE_DIR.parent)}'
        for name, line, at_module_level in imports(relative_module, path):
            top = name.split('.')[0]
            if top == PACKAGE:
                target = layer_of('.'.join(name.split('.')[1:2]))
                shim = relative_module in CLI_SHIMS and target == 'cli' and not at_module_level
                if target != layer and target not in ALLOWED[layer] and not shim:
                    problems.append(f'{where}:{line}: {layer} imports {name} ({target} is not below {layer})')
            elif top in ROS_LIBRARIES and layer not in ROS_LAYERS:
                problems.append(f'{where}:{line}: {top} imported outside ros/ and offline/')
            elif top == 'torch' and at_module_level and layer in NO_MODULE_LEVEL_TORCH:
                problems.append(f'{where}:{line}: torch imported at module level in {layer}/')
    return problems


def test_every_layer_has_a_row():
    layers = {layer_of(relative_module) for relative_module, _ in modules()}
    assert layers <= set(ALLOWED), f'modules outside the known layers: {sorted(layers - set(ALLOWED))}'
    assert {'network', 'loading', 'backends', 'export', 'pipeline', 'geometry', 'files', 'ros', 'offline',
            'commands'} <= layers


def test_imports_point_down():
    assert violations() == []


def test_a_violation_is_reported(tmp_path, monkeypatch):
    """The checker itself: an upward import, a ROS import and a module-level torch import are all caught."""
    package = tmp_path / PACKAGE
    (package / 'network').mkdir(parents=True)
    (package / 'pipeline').mkdir()
    (package / '__init__.py').write_text('')
    (package / 'network' / '__init__.py').write_text('')
    (package / 'pipeline' / '__init__.py').write_text('')
    (package / 'network' / 'bad.py').write_text('from ..pipeline import frame_stage\n'
                                                'from .. import defaults\n')
    (package / 'pipeline' / 'bad.py').write_text('import torch\nimport rclpy\n\n\ndef lazy():\n'
                                                 '    import torch\n    from ..commands import run\n')
    monkeypatch.setattr(__import__(__name__, fromlist=['PACKAGE_DIR']), 'PACKAGE_DIR', package)
    found = violations()
    assert len(found) == 4, found
    assert any('network imports fast_foundation_stereo_ros.pipeline (pipeline is not below' in line for line in found)
    assert any('rclpy imported outside ros/ and offline/' in line for line in found)
    assert any('pipeline/bad.py:1: torch imported at module level' in line for line in found)
    assert any('pipeline/bad.py:7: pipeline imports fast_foundation_stereo_ros.commands (' in line for line in found)


@pytest.mark.parametrize('relative_module, expected', [('pipeline.frame_stage', 'pipeline'), ('cli', 'cli'),
                                                       ('', '__init__')])
def test_layer_names(relative_module, expected):
    assert layer_of(relative_module) == expected
