"""Several stereo heads, one backend, over real DDS: per-head topics, outputs and counters."""
import numpy as np
from stereo_msgs.msg import DisparityImage

from fast_foundation_stereo_ros.ros.scene_publisher import STEREO_TOPICS

from .helpers import (NodeProcess, RosGraph, StereoSource, cached_scene, counter, diagnostic_values, float_image,
                      now_ns, subscribe_diagnostics, unique_domain_id, wait_until)

HEADS = ('front', 'rear')


def test_two_heads_get_their_own_outputs_and_a_silent_head_does_not_stop_the_other():
    domain = unique_domain_id()
    scenes = {'front': cached_scene('plane'), 'rear': cached_scene('slanted')}
    parameters = {'model': 'sgbm', 'max_disp': 64, 'cameras': '[front, rear]', 'log_period': 0.0,
                  'diagnostics_period': 0.2}
    with NodeProcess(domain, parameters) as node, RosGraph(domain) as graph:
        sources = {head: StereoSource(graph, topics=tuple(f'{head}/{t}' for t in STEREO_TOPICS)) for head in HEADS}
        outputs = {head: graph.subscribe(DisparityImage, f'{head}/disparity') for head in HEADS}
        diagnostics = subscribe_diagnostics(graph)
        assert all(source.wait_for_subscriber() for source in sources.values()), node.output()
        assert graph.wait_for_publishers(['/front/disparity', '/rear/disparity', '/front/points2']), node.output()
        assert graph.node.count_publishers('/disparity') == 0     # no unnamed head

        def publish(heads):
            def step():
                stamp = now_ns()
                for head in heads:
                    sources[head].publish(sources[head].messages(scenes[head], stamp))
                return all(len(outputs[head]) >= 2 for head in heads)
            return step
        assert wait_until(publish(HEADS), 20.0, interval=0.15), node.output()
        for head in HEADS:    # each head's disparity is its own scene's
            disparity = float_image(outputs[head].messages()[-1].image)
            truth = scenes[head].disparity
            valid = np.isfinite(disparity) & np.isfinite(truth)
            assert valid.mean() > 0.5
            assert np.median(np.abs(disparity[valid] - truth[valid])) < 0.5, head

        # rear goes silent; front keeps being served
        rear_before = len(outputs['rear'])
        front_before = len(outputs['front'])
        assert wait_until(lambda: publish(('front',))() and len(outputs['front']) >= front_before + 5, 20.0,
                          interval=0.15), node.output()
        assert len(outputs['rear']) <= rear_before + 1    # at most one set still in flight
        assert wait_until(lambda: counter(diagnostic_values(diagnostics), 'head.front.frames') >= front_before + 5,
                          5.0)
        values = diagnostic_values(diagnostics)
        assert counter(values, 'head.rear.frames') >= 2 and counter(values, 'head.rear.sets') >= 2
        assert counter(values, 'head.front.frames') + counter(values, 'head.rear.frames') == \
            counter(values, 'frames')
        assert 'rate_hz.in.front/left/image_rect' in values and 'rate_hz.in.rear/right/camera_info' in values
