"""Helpers shared by the test folders: reading back point clouds (rclpy and rosbags messages alike)."""
import numpy as np

FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32


def cloud_fields(msg):
    """{field name: HxW float32} of an organised FLOAT32 PointCloud2 (copies, host byte order)."""
    raw = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.row_step)
    points = raw[:, :msg.width * msg.point_step].reshape(msg.height, msg.width, msg.point_step)
    result = {}
    for field in msg.fields:
        assert field.datatype == FLOAT32 and field.count == 1, f'field {field.name} is not one FLOAT32'
        chunk = np.ascontiguousarray(points[:, :, field.offset:field.offset + 4])
        result[field.name] = chunk.view('>f4' if msg.is_bigendian else '<f4')[:, :, 0].astype(np.float32)
    return result
