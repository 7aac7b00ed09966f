"""A real ROS 2 (rclpy, Fast DDS) camera for perch's `[source] kind = "ros2"`: publishes the first N
vtest frames with known stamps and frame_id, as `sensor_msgs/Image` rgb8 (rows padded, so perch must
honour `step`) or as `sensor_msgs/CompressedImage` JPEG (the original files), and records the
`vision_msgs/Detection2DArray` perch publishes for each.

Lockstep, so the test is deterministic: after each image it waits for the detections carrying that
image's stamp before sending the next (perch's pipeline is never busy when an image arrives, so none
is dropped as stale), over reliable QoS on both sides. `--unsupported K` sends K more images in an
encoding perch does not read (`bayer_rggb8`) at the end, for which no detections come.

Writes JSON: the stamps sent, every message received, the graph's node names, errors."""
import argparse
import json
import os
import sys
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from peer_common import rclpy_to_plain

BASE_SEC = 1_700_000_000
PAD = 16  # bytes of padding at the end of every rgb8 row


def stamp_of(i):
    """Image i's stamp: 10 fps like the folder's seqinfo.ini (the tracker sees the same time steps),
    offset by 5 ns so a stamp made up elsewhere cannot pass for it."""
    return BASE_SEC + i // 10, (i % 10) * 100_000_000 + 5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", required=True, help="folder written by examples/decode_frames (frames.json)")
    ap.add_argument("--mode", choices=["image", "compressed"], required=True)
    ap.add_argument("--topic", default="/camera/image_raw")
    ap.add_argument("--frame-id", default="cam_optical")
    ap.add_argument("--detections", default="/perch/detections")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--unsupported", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()

    with open(os.path.join(a.frames, "frames.json")) as f:
        index = json.load(f)
    w, h = index["width"], index["height"]

    rclpy.init()
    node = Node("perch_camera")
    res = {"sent": [], "received": [], "nodes": [], "errors": [], "mode": a.mode, "step": None}
    reliable = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10,
                          durability=DurabilityPolicy.VOLATILE)
    msg_type = Image if a.mode == "image" else CompressedImage
    pub = node.create_publisher(msg_type, a.topic, reliable)
    got = {}

    def on_detections(m):
        plain = rclpy_to_plain(m)
        res["received"].append({"t": time.monotonic(), "msg": plain})
        s = plain["header"]["stamp"]
        got[(s["sec"], s["nanosec"])] = plain

    node.create_subscription(Detection2DArray, a.detections, on_detections,
                             QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=100))
    deadline = time.monotonic() + a.timeout

    def spin_until(cond, seconds, what):
        until = min(deadline, time.monotonic() + seconds)
        while not cond():
            if time.monotonic() > until:
                res["errors"].append(f"timed out after {seconds:.0f} s waiting for {what}")
                return False
            rclpy.spin_once(node, timeout_sec=0.02)
        return True

    def spin_for(seconds):
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            rclpy.spin_once(node, timeout_sec=0.02)

    def header(i):
        sec, ns = stamp_of(i)
        m = msg_type()
        m.header.stamp = Time(sec=sec, nanosec=ns)
        m.header.frame_id = a.frame_id
        return m

    if spin_until(lambda: pub.get_subscription_count() > 0 and node.count_publishers(a.detections) > 0, 60,
                  "perch to subscribe to the images and publish detections"):
        # Both ends of both topics matched on our side; give perch's side a moment to match us.
        spin_for(1.5)
        res["nodes"] = [f"{ns.rstrip('/')}/{n}" for n, ns in node.get_node_names_and_namespaces()]
        for i in range(a.n):
            m = header(i)
            entry = index["files"][i]
            if a.mode == "image":
                raw = np.fromfile(os.path.join(a.frames, entry["raw"]), dtype=np.uint8).reshape(h, w * 3)
                padded = np.zeros((h, w * 3 + PAD), dtype=np.uint8)
                padded[:, : w * 3] = raw
                m.height, m.width, m.encoding, m.is_bigendian, m.step = h, w, "rgb8", 0, w * 3 + PAD
                m.data = padded.tobytes()
                res["step"] = m.step
            else:
                m.format = "jpeg"
                with open(entry["jpeg"], "rb") as f:
                    m.data = f.read()
            key = stamp_of(i)
            t0 = time.monotonic()
            pub.publish(m)
            res["sent"].append({"index": i, "stamp": list(key)})
            # The first image also waits for the detector's warm-up.
            if not spin_until(lambda: key in got, 90 if i == 0 else 45, f"detections of image {i} (stamp {key})"):
                break
            res["sent"][-1]["rtt_s"] = time.monotonic() - t0
        for k in range(a.unsupported):
            m = header(a.n + k)
            m.height, m.width, m.encoding, m.is_bigendian, m.step = 4, 4, "bayer_rggb8", 0, 4
            m.data = bytes(16)
            pub.publish(m)
            res["sent"].append({"index": a.n + k, "stamp": list(stamp_of(a.n + k)), "unsupported": True})
            spin_for(0.2)
        # Anything perch still sends (it should send nothing more) arrives within this.
        spin_for(1.0)
    node.destroy_node()
    rclpy.shutdown()
    with open(a.out, "w") as f:
        json.dump(res, f)
    print(f"image_peer: sent {len(res['sent'])}, received {len(res['received'])}, errors {res['errors']}", file=sys.stderr)


if __name__ == "__main__":
    main()
