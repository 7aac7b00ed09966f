"""Offline CDR interop check, driven by perch-ros2's `tests/cdr_interop.rs`.

DIR/manifest.json lists samples [{"name", "type"}]; DIR/<name>.cdr holds perch's serialized bytes and
DIR/<name>.json the same message as JSON. For each sample this script
  * decodes the bytes with rosbags (ROS 2 Kilted type store + vision_msgs from nodes/ros2/msg) and
    compares every field with the JSON; re-serializes with rosbags and compares the bytes;
  * decodes the bytes with rclpy's deserialize_message and compares every field;
  * builds the message in rclpy from the JSON and writes serialize_message's bytes to <name>.rclpy.cdr
    (the Rust test decodes them back).
Writes DIR/result.json: {name: {"rosbags": [diffs], "rosbags_bytes_identical": bool, "rclpy": [diffs]}}.
"""
import importlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peer_common import dataclass_to_plain, diff, rclpy_to_plain  # noqa: E402

MSG_DIR = os.path.join(HERE, "..", "msg", "vision_msgs", "msg")


def rosbags_store():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for fname in sorted(os.listdir(MSG_DIR)):
        if fname.endswith(".msg"):
            with open(os.path.join(MSG_DIR, fname)) as f:
                types.update(get_types_from_msg(f.read(), f"vision_msgs/msg/{fname[:-4]}"))
    store.register(types)
    return store


def rclpy_class(type_name):
    pkg, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def rclpy_from_plain(cls, plain):
    """Build a rclpy message of `cls` from nested dicts (the inverse of rclpy_to_plain)."""
    msg = cls()
    for field, ftype in cls.get_fields_and_field_types().items():
        value = plain[field]
        if ftype.startswith("sequence<") and "/" in ftype:
            elem = rclpy_class(ftype[len("sequence<"):-1].replace("/", "/msg/", 1))
            value = [rclpy_from_plain(elem, v) for v in value]
        elif "/" in ftype and "[" not in ftype:
            value = rclpy_from_plain(rclpy_class(ftype.replace("/", "/msg/", 1)), value)
        elif ftype == "octet":
            value = bytes([value])
        setattr(msg, field, value)
    return msg


def main(d):
    with open(os.path.join(d, "manifest.json")) as f:
        manifest = json.load(f)
    from rclpy.serialization import deserialize_message, serialize_message
    store = rosbags_store()
    result = {}
    for entry in manifest:
        name, type_name = entry["name"], entry["type"]
        with open(os.path.join(d, f"{name}.cdr"), "rb") as f:
            raw = f.read()
        with open(os.path.join(d, f"{name}.json")) as f:
            expected = json.load(f)
        r = {}
        try:
            rb = store.deserialize_cdr(raw, type_name)
            r["rosbags"] = diff(expected, dataclass_to_plain(rb))
            r["rosbags_bytes_identical"] = bytes(store.serialize_cdr(rb, type_name)) == raw
        except Exception as e:  # a decode failure is a test failure, reported to the Rust side
            r["rosbags"] = [f"rosbags failed: {e!r}"]
            r["rosbags_bytes_identical"] = False
        try:
            cls = rclpy_class(type_name)
            r["rclpy"] = diff(expected, rclpy_to_plain(deserialize_message(raw, cls)))
            with open(os.path.join(d, f"{name}.rclpy.cdr"), "wb") as f:
                f.write(serialize_message(rclpy_from_plain(cls, expected)))
        except Exception as e:
            r["rclpy"] = [f"rclpy failed: {e!r}"]
        result[name] = r
    with open(os.path.join(d, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
