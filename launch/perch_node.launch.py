"""A camera driver -> perch -> consumer graph, from any directory:

    ros2 launch /path/to/perch/launch/perch_node.launch.py image_topic:=/camera/image_raw
    ros2 launch launch/perch_node.launch.py camera:=false image_topic:=/robot1/front/image_raw/compressed
    ros2 launch launch/perch_node.launch.py consumer_package:=my_pkg consumer_executable:=follow_person

perch subscribes to the driver's images (`configs/ros2-node.toml`: `[source] kind = "ros2"`) and
publishes `vision_msgs/Detection2DArray` on `/perch/detections`, each message carrying its image's
header, so the consumer can pair them (message_filters). The camera driver (`usb_cam` by default:
`ros-<distro>-usb-cam`) and the consumer are ordinary ROS 2 nodes; perch is a plain binary that speaks
DDS itself, started as a process, with namespace, node name and remappings handed over as environment
variables (`PERCH_ROS2_*`, see perch.launch.py) and the image topic as `--set source.topic=...`.
A topic ending in `/compressed` is read as `sensor_msgs/CompressedImage` (JPEG).

The consumer gets two remappings: `image` -> the image topic and `detections` -> perch's detections.
"""
import os
import shutil

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

LAUNCH_DIR = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(LAUNCH_DIR)
RELEASE_BINARY = os.path.join(REPO, "target", "release", "perch")
DEFAULT_BINARY = RELEASE_BINARY if os.path.exists(RELEASE_BINARY) else (shutil.which("perch") or RELEASE_BINARY)
DEFAULT_CONFIG = os.path.join(REPO, "configs", "ros2-node.toml")


def absolute(path):
    """A path relative to the launching shell's directory, made absolute (a shipped config's name is
    left for perch to look up)."""
    path = os.path.expanduser(path)
    return os.path.abspath(path) if os.path.exists(path) else path


def resolve(topic, namespace):
    """perch's detections topic as a consumer outside perch's namespace must name it."""
    return topic if topic.startswith("/") else namespace.rstrip("/") + "/" + topic


def graph(context):
    def value(name):
        return LaunchConfiguration(name).perform(context).strip()

    image_topic = value("image_topic")
    actions = []
    if value("camera").lower() in ("true", "1"):
        actions.append(Node(
            package=value("camera_package"),
            executable=value("camera_executable"),
            name="camera",
            remappings=[("image_raw", image_topic)],
            output="screen",
        ))
    cmd = [value("perch"), "run", "--config", absolute(value("config")), "--set", f'source.topic="{image_topic}"']
    for flag, name in (("--conf", "conf"), ("--iou", "iou")):
        if value(name):
            cmd += [flag, value(name)]
    actions.append(ExecuteProcess(
        name="perch",
        cmd=cmd,
        additional_env={
            "PERCH_ROS2_NAMESPACE": value("namespace"),
            "PERCH_ROS2_NODE_NAME": value("node_name"),
            "PERCH_ROS2_REMAP": "detections:=" + value("detections_topic"),
        },
        output="screen",
        sigterm_timeout="10",
    ))
    if value("consumer_package") and value("consumer_executable"):
        actions.append(Node(
            package=value("consumer_package"),
            executable=value("consumer_executable"),
            remappings=[("image", image_topic),
                        ("detections", resolve(value("detections_topic"), value("namespace")))],
            output="screen",
        ))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("perch", default_value=DEFAULT_BINARY, description="path of the perch binary"),
        DeclareLaunchArgument("config", default_value=DEFAULT_CONFIG,
                              description="perch TOML config with [source] kind = \"ros2\" and [ros2] enabled = true"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="the images perch subscribes to (source.topic); .../compressed: CompressedImage"),
        DeclareLaunchArgument("conf", default_value="", description="minimum class score (--conf); empty: the config's"),
        DeclareLaunchArgument("iou", default_value="", description="NMS IoU threshold (--iou); empty: the config's"),
        DeclareLaunchArgument("namespace", default_value="/perch", description="perch's node namespace"),
        DeclareLaunchArgument("node_name", default_value="perch", description="perch's node name"),
        DeclareLaunchArgument("detections_topic", default_value="detections",
                              description="remap of perch's vision_msgs/Detection2DArray topic"),
        DeclareLaunchArgument("camera", default_value="true", description="start the camera driver (false: one runs already)"),
        DeclareLaunchArgument("camera_package", default_value="usb_cam", description="the camera driver's package"),
        DeclareLaunchArgument("camera_executable", default_value="usb_cam_node_exe", description="the camera driver's executable"),
        DeclareLaunchArgument("consumer_package", default_value="", description="the consumer's package (empty: none)"),
        DeclareLaunchArgument("consumer_executable", default_value="", description="the consumer's executable"),
        OpaqueFunction(function=graph),
    ])
