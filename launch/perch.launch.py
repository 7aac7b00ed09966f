"""Start perch as a ROS 2 node.

    ros2 launch launch/perch.launch.py config:=configs/ros2.toml namespace:=/robot1 \
        detections_topic:=/robot1/vision/detections

perch is not a ROS package: it is a plain binary that speaks DDS itself (ros2-client), so this file
starts it with ExecuteProcess and hands namespace, node name and topic remappings over as environment
variables (`PERCH_ROS2_NAMESPACE`, `PERCH_ROS2_NODE_NAME`, `PERCH_ROS2_REMAP`); `ROS_DOMAIN_ID` is
inherited from the launching shell as usual.
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration

LAUNCH_DIR = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(LAUNCH_DIR)
DEFAULT_BINARY = os.path.join(REPO, "target", "release", "perch")
DEFAULT_CONFIG = os.path.join(REPO, "configs", "ros2.toml")


def generate_launch_description():
    arg = LaunchConfiguration
    return LaunchDescription([
        DeclareLaunchArgument("perch", default_value=DEFAULT_BINARY, description="path of the perch binary"),
        DeclareLaunchArgument("config", default_value=DEFAULT_CONFIG,
                              description="perch TOML config ([ros2] enabled = true)"),
        DeclareLaunchArgument("namespace", default_value="/perch", description="node namespace"),
        DeclareLaunchArgument("node_name", default_value="perch", description="node name"),
        DeclareLaunchArgument("detections_topic", default_value="detections",
                              description="remap of the vision_msgs/Detection2DArray topic"),
        DeclareLaunchArgument("diagnostics_topic", default_value="diagnostics",
                              description="remap of the diagnostics topic (/diagnostics feeds diagnostic_aggregator)"),
        DeclareLaunchArgument("image_topic", default_value="image/compressed",
                              description="remap of the optional JPEG overlay topic"),
        ExecuteProcess(
            name="perch",
            cmd=[arg("perch"), "run", "--config", arg("config")],
            additional_env={
                "PERCH_ROS2_NAMESPACE": arg("namespace"),
                "PERCH_ROS2_NODE_NAME": arg("node_name"),
                "PERCH_ROS2_REMAP": ["detections:=", arg("detections_topic"),
                                     ";diagnostics:=", arg("diagnostics_topic"),
                                     ";image/compressed:=", arg("image_topic")],
            },
            output="screen",
            sigterm_timeout="10",
        ),
    ])
