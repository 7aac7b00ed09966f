"""Start perch as a ROS 2 node, from any directory:

    ros2 launch /path/to/perch/launch/perch.launch.py conf:=0.5 iou:=0.6 namespace:=/robot1 \
        detections_topic:=/robot1/vision/detections

perch is not a ROS package: it is a plain binary that speaks DDS itself (ros2-client), so this file
starts it with ExecuteProcess and hands namespace, node name and topic remappings over as environment
variables (`PERCH_ROS2_NAMESPACE`, `PERCH_ROS2_NODE_NAME`, `PERCH_ROS2_REMAP`); `ROS_DOMAIN_ID` is
inherited from the launching shell as usual. `conf`, `iou`, `model` and `source` become perch's
`--conf`, `--iou`, `--model` and `--source` flags when given (left empty: the config's values).
Relative `config`/`model` paths are taken from the directory `ros2 launch` runs in; perch itself
resolves the paths inside a config against the config file's folder, so any directory works.
"""
import os
import shutil

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration

LAUNCH_DIR = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(LAUNCH_DIR)
RELEASE_BINARY = os.path.join(REPO, "target", "release", "perch")
# The checkout's release build, else an installed perch (`cargo install --path .`) on PATH.
DEFAULT_BINARY = RELEASE_BINARY if os.path.exists(RELEASE_BINARY) else (shutil.which("perch") or RELEASE_BINARY)
DEFAULT_CONFIG = os.path.join(REPO, "configs", "ros2.toml")


def absolute(path):
    """A path given relative to the launching shell's directory, made absolute (names that are not
    files, such as `--config nano`, are left for perch to look up)."""
    path = os.path.expanduser(path)
    return os.path.abspath(path) if os.path.exists(path) else path


def perch_process(context):
    def value(name):
        return LaunchConfiguration(name).perform(context).strip()

    cmd = [value("perch"), "run", "--config", absolute(value("config"))]
    for flag, name in (("--conf", "conf"), ("--iou", "iou")):
        if value(name):
            cmd += [flag, value(name)]
    if value("model"):
        cmd += ["--model", absolute(value("model"))]
    if value("source"):
        cmd += ["--source", value("source")]
    return [ExecuteProcess(
        name="perch",
        cmd=cmd,
        additional_env={
            "PERCH_ROS2_NAMESPACE": value("namespace"),
            "PERCH_ROS2_NODE_NAME": value("node_name"),
            "PERCH_ROS2_REMAP": "detections:=" + value("detections_topic")
                                + ";diagnostics:=" + value("diagnostics_topic")
                                + ";image/compressed:=" + value("image_topic"),
        },
        output="screen",
        sigterm_timeout="10",
    )]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("perch", default_value=DEFAULT_BINARY, description="path of the perch binary"),
        DeclareLaunchArgument("config", default_value=DEFAULT_CONFIG,
                              description="perch TOML config ([ros2] enabled = true), a path or a shipped name"),
        DeclareLaunchArgument("conf", default_value="", description="minimum class score (--conf); empty: the config's"),
        DeclareLaunchArgument("iou", default_value="", description="NMS IoU threshold (--iou); empty: the config's"),
        DeclareLaunchArgument("model", default_value="", description="model directory (--model); empty: the config's"),
        DeclareLaunchArgument("source", default_value="", description="frame source (--source); empty: the config's"),
        DeclareLaunchArgument("namespace", default_value="/perch", description="node namespace"),
        DeclareLaunchArgument("node_name", default_value="perch", description="node name"),
        DeclareLaunchArgument("detections_topic", default_value="detections",
                              description="remap of the vision_msgs/Detection2DArray topic"),
        DeclareLaunchArgument("diagnostics_topic", default_value="diagnostics",
                              description="remap of the diagnostics topic (/diagnostics feeds diagnostic_aggregator)"),
        DeclareLaunchArgument("image_topic", default_value="image/compressed",
                              description="remap of the optional JPEG overlay topic"),
        OpaqueFunction(function=perch_process),
    ])
