"""Helpers shared by perch's ROS 2 interop scripts: plain-dict views of messages and field-by-field diffs."""
import json
import math


def rclpy_to_plain(msg):
    """A rclpy (rosidl) message as nested dicts/lists of Python scalars, fields in .msg order."""
    if hasattr(msg, "get_fields_and_field_types"):
        out = {}
        for name, ftype in msg.get_fields_and_field_types().items():
            v = getattr(msg, name)
            # A ROS `byte` is a 1-byte `bytes` in rclpy; other peers give an integer.
            out[name] = v[0] if ftype == "octet" and isinstance(v, (bytes, bytearray)) else rclpy_to_plain(v)
        return out
    if hasattr(msg, "tolist"):  # numpy arrays for fixed-size numeric arrays
        return msg.tolist()
    if isinstance(msg, (bytes, bytearray)):
        return list(msg)
    if isinstance(msg, (list, tuple)) or type(msg).__name__ == "array":  # array.array for uint8[] etc.
        return [rclpy_to_plain(x) for x in msg]
    return msg


def dataclass_to_plain(obj):
    """A Cyclone DDS IDL dataclass (or rosbags message) as nested dicts/lists."""
    import dataclasses
    if dataclasses.is_dataclass(obj):
        # rosbags lists a message's constants (upper case, e.g. DiagnosticStatus.WARN) as fields too;
        # ROS field names are lower case.
        return {f.name: dataclass_to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not f.name.startswith("__") and not f.name.isupper()}
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (bytes, bytearray)):
        return list(obj)
    if isinstance(obj, (list, tuple)):
        return [dataclass_to_plain(x) for x in obj]
    return obj


def diff(expected, got, path="msg"):
    """Every field where `got` differs from `expected` (exact: floats must be bit-equal)."""
    out = []
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected a message, got {type(got).__name__}"]
        if list(expected) != list(got):
            out.append(f"{path}: fields {list(got)} != expected {list(expected)}")
        for k in expected:
            if k in got:
                out += diff(expected[k], got[k], f"{path}.{k}")
        return out
    if isinstance(expected, list):
        if not isinstance(got, list):
            return [f"{path}: expected a sequence, got {type(got).__name__}"]
        if len(expected) != len(got):
            return [f"{path}: length {len(got)} != expected {len(expected)}"]
        for i, (e, g) in enumerate(zip(expected, got)):
            out += diff(e, g, f"{path}[{i}]")
        return out
    if isinstance(expected, float) or isinstance(got, float):
        try:
            ok = float(expected) == float(got) or (math.isnan(float(expected)) and math.isnan(float(got)))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            out.append(f"{path}: {got!r} != expected {expected!r}")
        return out
    if expected != got:
        out.append(f"{path}: {got!r} != expected {expected!r}")
    return out


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def stamp_key(plain_msg):
    s = plain_msg["header"]["stamp"]
    return (s["sec"], s["nanosec"])
