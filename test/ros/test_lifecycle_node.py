"""The managed lifecycle node over real DDS: transitions through change_state, outputs only while active."""
import time

from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from stereo_msgs.msg import DisparityImage

from .helpers import NodeProcess, RosGraph, StereoSource, cached_scene, now_ns, unique_domain_id, wait_until

LIFECYCLE_MODULE = 'fast_foundation_stereo_ros.ros.lifecycle_node'
NODE = '/fast_foundation_stereo'


def call(client, request):
    future = client.call_async(request)
    assert wait_until(future.done, 20.0), 'lifecycle service got no answer'
    return future.result()


def test_transitions_load_once_and_outputs_flow_only_while_active():
    domain = unique_domain_id()
    scene = cached_scene('plane')
    with NodeProcess(domain, {'model': 'sgbm', 'max_disp': 64, 'log_period': 0.0}, module=LIFECYCLE_MODULE) as node, \
            RosGraph(domain) as graph:
        source = StereoSource(graph)
        disparity = graph.subscribe(DisparityImage, 'disparity')
        change = graph.node.create_client(ChangeState, f'{NODE}/change_state')
        get_state = graph.node.create_client(GetState, f'{NODE}/get_state')
        assert change.wait_for_service(timeout_sec=15.0) and get_state.wait_for_service(timeout_sec=15.0), \
            node.output()

        def state():
            return call(get_state, GetState.Request()).current_state.id

        def transition(transition_id):
            return call(change, ChangeState.Request(transition=Transition(id=transition_id))).success

        def outputs_within(seconds):
            """Messages received while publishing fresh sets for `seconds`."""
            before = len(disparity)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                source.publish(source.messages(scene, now_ns()))
                time.sleep(0.15)
            return len(disparity) - before

        def inputs_subscribed():
            return all(p.get_subscription_count() > 0 for p in source.publishers)

        assert state() == State.PRIMARY_STATE_UNCONFIGURED
        assert not inputs_subscribed() and graph.node.count_publishers('/disparity') == 0
        assert 'warm-up' not in node.output()           # nothing loaded before configure

        assert transition(Transition.TRANSITION_CONFIGURE) and state() == State.PRIMARY_STATE_INACTIVE
        assert node.output().count('backend warm-up took') == 1
        assert outputs_within(1.0) == 0 and not inputs_subscribed()

        assert transition(Transition.TRANSITION_ACTIVATE) and state() == State.PRIMARY_STATE_ACTIVE
        assert source.wait_for_subscriber() and graph.wait_for_publishers(['/disparity']), node.output()
        assert wait_until(lambda: outputs_within(0.3) > 0 and len(disparity) >= 2, 20.0), node.output()

        assert transition(Transition.TRANSITION_DEACTIVATE) and state() == State.PRIMARY_STATE_INACTIVE
        assert wait_until(lambda: graph.node.count_publishers('/disparity') == 0 and not inputs_subscribed(), 10.0)
        time.sleep(0.5)                                  # let a set in flight arrive
        assert outputs_within(1.5) == 0

        assert transition(Transition.TRANSITION_ACTIVATE) and state() == State.PRIMARY_STATE_ACTIVE
        assert source.wait_for_subscriber() and graph.wait_for_publishers(['/disparity']), node.output()
        assert wait_until(lambda: outputs_within(0.3) > 0, 20.0), node.output()
        assert node.output().count('backend warm-up took') == 1     # deactivate kept the backend loaded

        assert transition(Transition.TRANSITION_DEACTIVATE)
        assert transition(Transition.TRANSITION_CLEANUP) and state() == State.PRIMARY_STATE_UNCONFIGURED
        assert transition(Transition.TRANSITION_CONFIGURE) and state() == State.PRIMARY_STATE_INACTIVE
        assert node.output().count('backend warm-up took') == 2     # cleanup unloaded it
        assert node.alive()


def test_a_backend_that_cannot_load_fails_configure_and_stays_unconfigured():
    domain = unique_domain_id()
    with NodeProcess(domain, {'model': '/nonexistent/model.onnx', 'log_period': 0.0},
                     module=LIFECYCLE_MODULE) as node, RosGraph(domain) as graph:
        change = graph.node.create_client(ChangeState, f'{NODE}/change_state')
        get_state = graph.node.create_client(GetState, f'{NODE}/get_state')
        assert change.wait_for_service(timeout_sec=15.0), node.output()
        assert not call(change, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE))).success
        assert call(get_state, GetState.Request()).current_state.id == State.PRIMARY_STATE_UNCONFIGURED
        assert wait_until(lambda: 'configure failed:' in node.output() and 'model.onnx' in node.output(), 5.0)
        assert 'Traceback' not in node.output() and node.alive()
