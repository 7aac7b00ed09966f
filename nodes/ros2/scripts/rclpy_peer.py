"""A real ROS 2 (rclpy, Fast DDS) peer of perch: records detections, diagnostics and images, and sets
the `conf` parameter through the standard parameter services. Writes everything it saw as JSON."""
import argparse
import json
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from sensor_msgs.msg import CompressedImage
from vision_msgs.msg import Detection2DArray

from peer_common import rclpy_to_plain


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--namespace", default="/perch")
    ap.add_argument("--node", default="perch")
    ap.add_argument("--min-before", type=int, default=8)
    ap.add_argument("--min-after", type=int, default=20)
    ap.add_argument("--set-conf", type=float, default=0.6)
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()

    rclpy.init()
    node = Node("perch_check_rclpy")
    res = {"detections": [], "diagnostics": [], "images": [], "param": {}, "errors": []}
    reliable = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=200,
                          durability=DurabilityPolicy.VOLATILE)
    best_effort = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST, depth=10)
    ns = a.namespace.rstrip("/")
    node.create_subscription(Detection2DArray, f"{ns}/detections",
                             lambda m: res["detections"].append({"t": time.monotonic(), "msg": rclpy_to_plain(m)}), reliable)
    node.create_subscription(DiagnosticArray, f"{ns}/diagnostics",
                             lambda m: res["diagnostics"].append(rclpy_to_plain(m)), reliable)

    def on_image(m):
        data = bytes(m.data)
        res["images"].append({"header": rclpy_to_plain(m.header), "format": m.format, "len": len(data),
                              "head": data[:3].hex(), "tail": data[-2:].hex()})
    node.create_subscription(CompressedImage, f"{ns}/image/compressed", on_image, best_effort)

    deadline = time.monotonic() + a.timeout

    def spin_until(cond, what):
        while not cond():
            if time.monotonic() > deadline:
                res["errors"].append(f"timed out waiting for {what}")
                return False
            rclpy.spin_once(node, timeout_sec=0.05)
        return True

    def call(client, req, what):
        if not client.wait_for_service(timeout_sec=max(0.1, deadline - time.monotonic())):
            res["errors"].append(f"service for {what} not available")
            return None
        fut = client.call_async(req)
        if not spin_until(fut.done, what):
            return None
        return fut.result()

    def set_conf(value):
        req = SetParameters.Request()
        req.parameters = [Parameter(name="conf", value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))]
        r = call(setter, req, f"set_parameters conf={value}")
        return None if r is None else {"successful": r.results[0].successful, "reason": r.results[0].reason}

    # The change must be provable: wait (past --min-before messages) for a score below the new conf.
    # A tracker's first frames publish only new tracks, which ByteTrack starts at high scores, so a
    # fixed count alone can end before any low score has been seen.
    def below(msg):
        return any(r["hypothesis"]["score"] < a.set_conf for det in msg["detections"] for r in det["results"])

    ok = spin_until(lambda: len(res["detections"]) >= a.min_before and any(below(d["msg"]) for d in res["detections"]),
                    f"{a.min_before} detections, one with a score below {a.set_conf}")
    setter = node.create_client(SetParameters, f"{ns}/{a.node}/set_parameters")
    getter = node.create_client(GetParameters, f"{ns}/{a.node}/get_parameters")
    if ok:
        res["param"]["set"] = set_conf(a.set_conf)
        res["param"]["t_set"] = time.monotonic()
        res["param"]["set_invalid"] = set_conf(1.5)
        r = call(getter, GetParameters.Request(names=["conf", "iou"]), "get_parameters")
        if r is not None:
            res["param"]["get"] = {"conf": r.values[0].double_value, "conf_type": r.values[0].type,
                                   "iou": r.values[1].double_value, "iou_type": r.values[1].type}
        t_set = res["param"]["t_set"]
        spin_until(lambda: sum(1 for d in res["detections"] if d["t"] > t_set) >= a.min_after
                   and res["diagnostics"] and res["images"], f"{a.min_after} detections after the parameter change, diagnostics, images")
    node.destroy_node()
    rclpy.shutdown()
    with open(a.out, "w") as f:
        json.dump(res, f)
    print(f"rclpy_peer: {len(res['detections'])} detections, {len(res['diagnostics'])} diagnostics, "
          f"{len(res['images'])} images, errors {res['errors']}", file=sys.stderr)


if __name__ == "__main__":
    main()
