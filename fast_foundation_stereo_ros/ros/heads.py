"""One stereo head of the node: its topics, synchroniser, frame processor and publishers.

The node serves one head at its own namespace (parameter `cameras` empty) or one
head per listed namespace (`cameras: [front, rear]`: front/left/image_rect ... in,
front/disparity ... out), all through one backend. Per head: one synchroniser,
one FrameProcessor (its own output buffers and camera cache; the StereoPipeline
and so the backend are shared), one newest-wins slot in the worker's
`LatestSlots`, and counters `head.<name>.<counter>` on /diagnostics.

Verified by test/ros/test_node_heads.py (two heads over DDS).
"""
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

#: raw inputs (image_transport 'raw'), relative to the head's namespace
RAW_INPUT_TOPICS = ('left/image_rect', 'right/image_rect', 'left/camera_info', 'right/camera_info')
#: image_transport 'compressed' inputs: the image topics with the '/compressed' suffix
COMPRESSED_INPUT_TOPICS = ('left/image_rect/compressed', 'right/image_rect/compressed', 'left/camera_info',
                           'right/camera_info')
INPUT_TYPES = {'raw': (Image, Image, CameraInfo, CameraInfo),
               'compressed': (CompressedImage, CompressedImage, CameraInfo, CameraInfo)}


def head_prefix(name):
    return f'{name}/' if name else ''


def head_input_topics(name, transport):
    """The four input topics of head `name` ('' = the node's namespace) for `transport` ('raw'/'compressed')."""
    topics = COMPRESSED_INPUT_TOPICS if transport == 'compressed' else RAW_INPUT_TOPICS
    return tuple(head_prefix(name) + topic for topic in topics)


class StereoHead:
    def __init__(self, name, transport, processor, synchronizer):
        self.name = name
        self.transport = transport
        self.prefix = head_prefix(name)
        self.input_topics = head_input_topics(name, transport)
        self.input_types = INPUT_TYPES[transport]
        self.processor = processor
        self.synchronizer = synchronizer
        #: output key -> publisher; replaced as a whole (under the node's publish lock), never mutated
        self.publishers = {}
        self.subscriptions = []

    def topic(self, relative):
        """`relative` under the head's namespace."""
        return self.prefix + relative

    def counter(self, key):
        """The head's own /diagnostics counter for `key` (None for the single unnamed head)."""
        return f'head.{self.name}.{key}' if self.name else None
