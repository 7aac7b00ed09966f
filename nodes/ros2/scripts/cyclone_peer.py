"""An independent DDS peer (Eclipse Cyclone DDS, no ROS) reading perch's detections and diagnostics
under their DDS names, with the types declared here in Python IDL. Writes what it saw as JSON."""
import argparse
import json
import os
import sys
import time
from dataclasses import dataclass

from cyclonedds.core import Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import array, float64, int32, sequence, uint32, uint8
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from peer_common import dataclass_to_plain


@dataclass
class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32
    nanosec: uint32


@dataclass
class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time
    frame_id: str


@dataclass
class Point(IdlStruct, typename="geometry_msgs::msg::dds_::Point_"):
    x: float64
    y: float64
    z: float64


@dataclass
class Quaternion(IdlStruct, typename="geometry_msgs::msg::dds_::Quaternion_"):
    x: float64
    y: float64
    z: float64
    w: float64


@dataclass
class Pose(IdlStruct, typename="geometry_msgs::msg::dds_::Pose_"):
    position: Point
    orientation: Quaternion


@dataclass
class PoseWithCovariance(IdlStruct, typename="geometry_msgs::msg::dds_::PoseWithCovariance_"):
    pose: Pose
    covariance: array[float64, 36]


@dataclass
class Point2D(IdlStruct, typename="vision_msgs::msg::dds_::Point2D_"):
    x: float64
    y: float64


@dataclass
class Pose2D(IdlStruct, typename="vision_msgs::msg::dds_::Pose2D_"):
    position: Point2D
    theta: float64


@dataclass
class BoundingBox2D(IdlStruct, typename="vision_msgs::msg::dds_::BoundingBox2D_"):
    center: Pose2D
    size_x: float64
    size_y: float64


@dataclass
class ObjectHypothesis(IdlStruct, typename="vision_msgs::msg::dds_::ObjectHypothesis_"):
    class_id: str
    score: float64


@dataclass
class ObjectHypothesisWithPose(IdlStruct, typename="vision_msgs::msg::dds_::ObjectHypothesisWithPose_"):
    hypothesis: ObjectHypothesis
    pose: PoseWithCovariance


@dataclass
class Detection2D(IdlStruct, typename="vision_msgs::msg::dds_::Detection2D_"):
    header: Header
    results: sequence[ObjectHypothesisWithPose]
    bbox: BoundingBox2D
    id: str


@dataclass
class Detection2DArray(IdlStruct, typename="vision_msgs::msg::dds_::Detection2DArray_"):
    header: Header
    detections: sequence[Detection2D]


@dataclass
class KeyValue(IdlStruct, typename="diagnostic_msgs::msg::dds_::KeyValue_"):
    key: str
    value: str


@dataclass
class DiagnosticStatus(IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticStatus_"):
    level: uint8
    name: str
    message: str
    hardware_id: str
    values: sequence[KeyValue]


@dataclass
class DiagnosticArray(IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticArray_"):
    header: Header
    status: sequence[DiagnosticStatus]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--domain", type=int, required=True)
    ap.add_argument("--namespace", default="/perch")
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()
    ns = a.namespace.strip("/")
    qos = Qos(Policy.Reliability.Reliable(duration(seconds=1)), Policy.History.KeepLast(200),
              Policy.Durability.Volatile, Policy.DataRepresentation(use_cdrv0_representation=True))
    dp = DomainParticipant(a.domain)
    det_reader = DataReader(dp, Topic(dp, f"rt/{ns}/detections", Detection2DArray), qos=qos)
    diag_reader = DataReader(dp, Topic(dp, f"rt/{ns}/diagnostics", DiagnosticArray), qos=qos)
    res = {"detections": [], "diagnostics": [], "errors": []}
    end = time.monotonic() + a.timeout
    while not os.path.exists(a.stop_file):
        if time.monotonic() > end:
            res["errors"].append("timed out before the stop file appeared")
            break
        for s in det_reader.take(N=100):
            res["detections"].append({"t": time.monotonic(), "msg": dataclass_to_plain(s)})
        for s in diag_reader.take(N=100):
            res["diagnostics"].append(dataclass_to_plain(s))
        time.sleep(0.02)
    for s in det_reader.take(N=1000):
        res["detections"].append({"t": time.monotonic(), "msg": dataclass_to_plain(s)})
    with open(a.out, "w") as f:
        json.dump(res, f)
    print(f"cyclone_peer: {len(res['detections'])} detections, {len(res['diagnostics'])} diagnostics", file=sys.stderr)


if __name__ == "__main__":
    main()
