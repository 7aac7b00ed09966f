"""perch's live ROS 2 interop matrix. Runs perch's publisher (examples/ros2_fixture) against a real rclpy
node and a Cyclone DDS reader and checks every field of every message they received against what perch
logged as published. Must run inside a private network namespace (see run-live.sh): it refuses to run
where any interface but `lo` exists, so DDS traffic never leaves this machine.

Prints one PASS/FAIL line per check and `N passed, N failed`; exits 1 when anything failed. Each attempt
gets its own ROS domain; a failed attempt is retried once; logs are kept in --logs on failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peer_common import diff, read_jsonl, stamp_key  # noqa: E402

CYCLONE_XML = """<?xml version="1.0" encoding="UTF-8" ?>
<CycloneDDS xmlns="https://cdds.io/config">
  <Domain id="any">
    <General>
      <Interfaces><NetworkInterface name="lo" multicast="true" /></Interfaces>
      <AllowMulticast>true</AllowMulticast>
    </General>
  </Domain>
</CycloneDDS>
"""

CONF_SET = 0.6


def only_loopback():
    # /proc/net/dev is per network namespace (/sys/class/net is not, unless /sys is remounted).
    with open("/proc/net/dev") as f:
        names = sorted(line.split(":")[0].strip() for line in f.readlines()[2:] if ":" in line)
    return names == ["lo"], names


def wait(proc, seconds):
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def stop(proc):
    """End a process this script started (by its own Popen handle only)."""
    if proc.poll() is None:
        proc.terminate()
        if wait(proc, 5) is None:
            proc.kill()
            proc.wait()


def starter(env, logs, procs):
    """start(cmd, log_name, cwd): a process logging to logs/log_name, remembered in procs (to stop at the end)."""
    def start(cmd, log_name, cwd):
        p = subprocess.Popen(cmd, env=env, stdout=open(os.path.join(logs, log_name), "w"), stderr=subprocess.STDOUT, cwd=cwd)
        procs.append(p)
        return p
    return start


def check_fields(name, received, published_by_stamp, min_count):
    """Every received detections message equals, field for field, the one perch logged with that stamp."""
    problems = []
    if len(received) < min_count:
        problems.append(f"received {len(received)} messages, expected at least {min_count}")
    seen_empty = seen_track = seen_index_label = False
    for r in received:
        msg = r["msg"]
        key = stamp_key(msg)
        exp = published_by_stamp.get(key)
        if exp is None:
            problems.append(f"received a message with stamp {key} that perch did not log as published")
            continue
        d = diff(exp, msg)
        problems += d[:5]
        seen_empty |= not msg["detections"]
        seen_track |= any(det["id"] for det in msg["detections"])
        seen_index_label |= any(res["hypothesis"]["class_id"] == "7" for det in msg["detections"] for res in det["results"])
    if received and not (seen_empty and seen_track and seen_index_label):
        problems.append(f"coverage: empty={seen_empty} track_id={seen_track} index-label={seen_index_label}")
    return (name, not problems, f"{len(received)} messages checked" if not problems else "; ".join(problems[:8]))


def run_attempt(args, attempt, logs):
    os.makedirs(logs, exist_ok=True)
    domain = args.domain + attempt
    cyclone_xml = os.path.join(logs, "cyclone.xml")
    with open(cyclone_xml, "w") as f:
        f.write(CYCLONE_XML)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), CYCLONEDDS_URI=f"file://{cyclone_xml}",
               PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""),
               RUST_LOG=os.environ.get("RUST_LOG", "warn,rustdds=error"))
    for k in ("PERCH_ROS2_NAMESPACE", "PERCH_ROS2_NODE_NAME", "PERCH_ROS2_REMAP"):
        env.pop(k, None)
    stop_file = os.path.join(logs, "stop")
    published = os.path.join(logs, "published.jsonl")
    rclpy_out = os.path.join(logs, "rclpy.json")
    cyclone_out = os.path.join(logs, "cyclone.json")
    procs = []

    def start(cmd, log_name):
        log = open(os.path.join(logs, log_name), "w")
        p = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=HERE)
        procs.append(p)
        return p

    t0 = time.monotonic()
    try:
        rclpy_p = start([args.python, os.path.join(HERE, "rclpy_peer.py"), "--out", rclpy_out,
                         "--set-conf", str(CONF_SET), "--timeout", str(args.timeout)], "rclpy.log")
        cyc_p = start([args.python, os.path.join(HERE, "cyclone_peer.py"), "--out", cyclone_out, "--domain", str(domain),
                       "--stop-file", stop_file, "--timeout", str(args.timeout + 30)], "cyclone.log")
        fix_p = start([args.fixture, "--out", published, "--min-subscribers", "2", "--stop-file", stop_file,
                       "--max-seconds", str(args.timeout + 20)], "fixture.log")
        rc_rclpy = wait(rclpy_p, args.timeout + 15)
        open(stop_file, "w").close()
        rc_fix = wait(fix_p, 20)
        rc_cyc = wait(cyc_p, 20)
    finally:
        for p in procs:
            stop(p)
    wall = time.monotonic() - t0

    checks = []
    checks.append(("processes exit cleanly", rc_rclpy == 0 and rc_fix == 0 and rc_cyc == 0,
                   f"rclpy {rc_rclpy}, fixture {rc_fix}, cyclone {rc_cyc} in {wall:.1f} s"))
    try:
        log = read_jsonl(published)
    except OSError as e:
        log = []
        checks.append(("fixture log", False, str(e)))
    pubs = [e for e in log if e["kind"] == "detections"]
    by_stamp = {stamp_key(e["msg"]): e["msg"] for e in pubs}
    conf_by_stamp = {stamp_key(e["msg"]): e["conf"] for e in pubs}
    counters = next((e for e in log if e["kind"] == "counters"), {}).get("counters", {})
    checks.append(("perch published, none unsent", bool(pubs) and all(e["sent"] for e in pubs) and counters.get("unsent", 1) == 0,
                   f"{len(pubs)} published, counters {counters}"))

    def load(path):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            return {"detections": [], "diagnostics": [], "images": [], "param": {}, "errors": [f"no result: {e}"]}

    rc = load(rclpy_out)
    cy = load(cyclone_out)
    checks.append(check_fields("rclpy receives Detection2DArray, every field", rc["detections"], by_stamp, 15))
    checks.append(check_fields("cyclone receives Detection2DArray, every field", cy["detections"], by_stamp, 15))

    # Parameter: set conf through rclpy's parameter services; the following messages reflect it.
    p = rc.get("param", {})
    problems = []
    if not (p.get("set") or {}).get("successful"):
        problems.append(f"set conf={CONF_SET}: {p.get('set')}")
    if (p.get("set_invalid") or {}).get("successful") is not False:
        problems.append(f"set conf=1.5 was not refused: {p.get('set_invalid')}")
    got = p.get("get") or {}
    if abs(got.get("conf", -1) - CONF_SET) > 1e-6 or got.get("conf_type") != 3:
        problems.append(f"get_parameters: {got}")
    t_set = p.get("t_set")
    after = [r["msg"] for r in rc["detections"] if t_set is not None and r["t"] > t_set + 0.5]
    if len(after) < 5:
        problems.append(f"only {len(after)} messages received 0.5 s after the change")
    for m in after:
        c = conf_by_stamp.get(stamp_key(m))
        if c is None or abs(c - CONF_SET) > 1e-6:
            problems.append(f"message {stamp_key(m)} after the change was made with conf {c}")
            break
        low = [res["hypothesis"]["score"] for det in m["detections"] for res in det["results"] if res["hypothesis"]["score"] < CONF_SET]
        if low:
            problems.append(f"message {stamp_key(m)} after the change has scores {low} < {CONF_SET}")
            break
    before = [r["msg"] for r in rc["detections"] if t_set is not None and r["t"] < t_set]
    if not any(res["hypothesis"]["score"] < CONF_SET for m in before for det in m["detections"] for res in det["results"]):
        problems.append("no message before the change had a score below the new conf (test would prove nothing)")
    checks.append(("rclpy sets conf via parameter services; next messages reflect it", not problems,
                   f"{len(after)} messages after the change, all with conf {CONF_SET}" if not problems else "; ".join(problems)))

    # Diagnostics arrive, with the pipeline status at WARN (the fixture misses 25 % of deadlines > 5 %).
    def diag_ok(diags, who):
        probs = []
        if not diags:
            return (f"{who} receives diagnostics", False, "no DiagnosticArray received")
        last = diags[-1]
        names = [s["name"] for s in last["status"]]
        if names[:3] != ["perch: pipeline", "perch: stage capture", "perch: stage ros2"]:
            probs.append(f"status names {names}")
        pipe = last["status"][0]
        keys = {kv["key"]: kv["value"] for kv in pipe["values"]}
        for k in ("fps", "captured", "published", "deadline_miss_rate", "dropped_deadline", "dropped_stale"):
            if k not in keys:
                probs.append(f"missing key {k}")
        if pipe["level"] != 1:
            probs.append(f"pipeline level {pipe['level']} (expected WARN=1 at a 25 % miss rate)")
        stage = {kv["key"] for kv in last["status"][2]["values"]}
        if not {"p50_ms", "p99_ms"} <= stage:
            probs.append(f"stage keys {sorted(stage)}")
        if last["header"]["frame_id"] != "camera":
            probs.append(f"frame_id {last['header']['frame_id']!r}")
        return (f"{who} receives diagnostics (per-stage p50/p99, drops, WARN on misses)", not probs,
                f"{len(diags)} arrays, miss rate {keys.get('deadline_miss_rate')}" if not probs else "; ".join(probs))

    checks.append(diag_ok(rc["diagnostics"], "rclpy"))
    checks.append(diag_ok(cy["diagnostics"], "cyclone"))

    imgs = rc.get("images", [])
    img_ok = bool(imgs) and all(i["format"] == "jpeg" and i["head"] == "ffd8ff" and i["tail"] == "ffd9"
                                and i["header"]["frame_id"] == "camera" for i in imgs)
    checks.append(("rclpy receives image/compressed (JPEG)", img_ok, f"{len(imgs)} images" if imgs else "none received"))
    errors = rc.get("errors", []) + cy.get("errors", [])
    if errors:
        checks.append(("peers report no errors", False, "; ".join(errors)))
    return checks


def run_perch_e2e(args, logs):
    """`perch run --config configs/ros2.toml` (the real binary: replay, detector, tracker) -> a real rclpy
    node: detections arrive with sane fields, `conf` set through the parameter services applies, and
    diagnostics name the real stages. No published log to compare against, so the checks are semantic."""
    os.makedirs(logs, exist_ok=True)
    domain = args.domain + 10
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for k in ("PERCH_ROS2_NAMESPACE", "PERCH_ROS2_NODE_NAME", "PERCH_ROS2_REMAP"):
        env.pop(k, None)
    rclpy_out = os.path.join(logs, "rclpy.json")
    repo = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
    procs = []

    start = starter(env, logs, procs)

    try:
        rclpy_p = start([args.python, os.path.join(HERE, "rclpy_peer.py"), "--out", rclpy_out, "--set-conf", str(CONF_SET),
                         "--min-before", "5", "--min-after", "15", "--timeout", str(args.timeout + 60)], "rclpy.log", HERE)
        perch_p = start([args.perch, "run", "--config", args.perch_config, "--set", "source.loop=true",
                         "--set", "pipeline.budget_ms=5000"], "perch.log", repo)
        rc_rclpy = wait(rclpy_p, args.timeout + 75)
        perch_alive = perch_p.poll() is None
        if perch_alive:
            perch_p.send_signal(2)  # Ctrl-C: perch stops cleanly and prints its report
        rc_perch = wait(perch_p, 30)
    finally:
        for p in procs:
            stop(p)
    checks = [("perch run (real pipeline) stays up and stops cleanly on Ctrl-C", rc_rclpy == 0 and perch_alive and rc_perch == 0,
               f"rclpy {rc_rclpy}, perch alive {perch_alive}, perch exit {rc_perch}")]
    # A clean shutdown logs no errors (ros2-client once logged "Cannot notify spin task to stop" on every one).
    with open(os.path.join(logs, "perch.log"), errors="replace") as f:
        errors = [line.strip() for line in f if " ERROR " in line or line.startswith("ERROR")]
    checks.append(("perch run: a clean Ctrl-C shutdown logs no ERROR lines", not errors, "; ".join(errors[:3])))
    try:
        with open(rclpy_out) as f:
            rc = json.load(f)
    except (OSError, ValueError) as e:
        rc = {"detections": [], "diagnostics": [], "param": {}, "errors": [str(e)]}
    msgs = [r["msg"] for r in rc["detections"]]
    probs = []
    if len(msgs) < 20:
        probs.append(f"only {len(msgs)} messages")
    stamps = [stamp_key(m) for m in msgs]
    if stamps != sorted(stamps) or len(set(stamps)) != len(stamps):
        probs.append("stamps are not strictly increasing")
    boxes = [d for m in msgs for d in m["detections"]]
    if not boxes:
        probs.append("no detections at all")
    for m in msgs:
        if m["header"]["frame_id"] != "camera":
            probs.append(f"frame_id {m['header']['frame_id']!r}")
            break
    for d in boxes:
        b, h = d["bbox"], d["results"][0]["hypothesis"] if d["results"] else None
        if h is None or not (b["size_x"] > 0 and b["size_y"] > 0 and b["center"]["position"]["x"] >= 0
                             and b["center"]["position"]["y"] >= 0 and 0 < h["score"] <= 1 and h["class_id"] and not h["class_id"].isdigit()):
            probs.append(f"implausible detection {d}")
            break
    checks.append(("perch run -> rclpy: Detection2DArray per frame, class names, source-pixel boxes", not probs,
                   f"{len(msgs)} messages, {len(boxes)} detections" if not probs else "; ".join(probs)))
    t_set = rc.get("param", {}).get("t_set")
    after = [r["msg"] for r in rc["detections"] if t_set is not None and r["t"] > t_set + 0.5]
    low_after = [h["hypothesis"]["score"] for m in after for d in m["detections"] for h in d["results"] if h["hypothesis"]["score"] < CONF_SET]
    before = [r["msg"] for r in rc["detections"] if t_set is not None and r["t"] < t_set]
    low_before = [h["hypothesis"]["score"] for m in before for d in m["detections"] for h in d["results"] if h["hypothesis"]["score"] < CONF_SET]
    ok = bool((rc.get("param", {}).get("set") or {}).get("successful")) and len(after) >= 5 and not low_after and bool(low_before)
    checks.append((f"perch run: `conf` set to {CONF_SET} via parameter services reaches the detector", ok,
                   f"{len(low_before)} scores < {CONF_SET} before, {len(low_after)} in {len(after)} messages after; set {rc.get('param', {}).get('set')}"))
    diags = rc.get("diagnostics", [])
    names = [s["name"] for s in diags[-1]["status"]] if diags else []
    checks.append(("perch run: diagnostics name the real stages", "perch: stage detect" in names and "perch: pipeline" in names,
                   f"{len(diags)} arrays, statuses {names}"))
    return checks


IMAGE_N = 20          # vtest frames sent as images
IMAGE_UNSUPPORTED = 3  # bayer_rggb8 images sent after them in the `image` run (decode errors, no detections)
BOX_TOL_PX = 0.01     # box corners: ROS carries f64 centre/size computed from perch's f32 corners
SCORE_TOL = 1e-4


def box_of(det):
    """A Detection2D's [x1, y1, x2, y2] from its centre and size."""
    b = det["bbox"]
    cx, cy, sx, sy = b["center"]["position"]["x"], b["center"]["position"]["y"], b["size_x"], b["size_y"]
    return [cx - sx / 2, cy - sy / 2, cx + sx / 2, cy + sy / 2]


def compare_frame(ref_line, msg):
    """Differences between the folder replay's detections of a frame and perch's message for its image."""
    ref, got = ref_line["detections"], msg["detections"]
    if len(ref) != len(got):
        return [f"{len(got)} detections, the folder replay has {len(ref)}"]
    probs = []
    for r, d in zip(ref, got):
        h = d["results"][0]["hypothesis"]
        worst = max(abs(a - b) for a, b in zip(r["bbox"], box_of(d)))
        if worst > BOX_TOL_PX:
            probs.append(f"box {box_of(d)} vs {r['bbox']} (off by {worst:.4f} px)")
        if abs(h["score"] - r["score"]) > SCORE_TOL:
            probs.append(f"score {h['score']} vs {r['score']}")
        if h["class_id"] != (r["class"] or str(r["class_id"])):
            probs.append(f"class {h['class_id']!r} vs {r['class']!r}")
        if d["id"] != ("" if r["track_id"] is None else str(r["track_id"])):
            probs.append(f"track id {d['id']!r} vs {r['track_id']}")
    return probs


def image_source_reference(args, logs, repo):
    """The folder replay of the same frames, with the detector and tracker settings of configs/ros2-node.toml
    (the built-in defaults: YOLOv12n at 640, conf 0.25, iou 0.7, ByteTrack) and the schedule the ros2 runs
    are given (`every_frame`): what perch must publish for the images."""
    ref = os.path.join(logs, "reference.jsonl")
    cmd = [args.perch, "run", "--source", "datasets/vtest", "-q",
           "--set", f"source.end_frame={IMAGE_N}", "--set", "source.pacing=\"max\"", "--set", "detect.imgsz=640",
           "--set", "detect.schedule=\"every_frame\"", "--set", "track.frame_rate=10", "--set", "pipeline.budget_ms=60000",
           "--detections", ref]
    with open(os.path.join(logs, "reference.log"), "w") as log:
        rc = subprocess.run(cmd, cwd=repo, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout + 120).returncode
    lines = read_jsonl(ref) if rc == 0 and os.path.exists(ref) else []
    return rc, {line["source_index"]: line for line in lines}


def run_image_source_e2e(args, logs, mode, reference):
    """`[source] kind = "ros2"`: a real rclpy camera publishes the first IMAGE_N vtest frames (rgb8 with
    padded rows, or the JPEG files) with known stamps; the real perch binary subscribes, detects, tracks
    and publishes; rclpy checks one Detection2DArray per published frame, each with the image's header,
    detections equal to the folder replay's, and the ledger in perch's report."""
    os.makedirs(logs, exist_ok=True)
    repo = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
    domain = args.domain + (20 if mode == "image" else 21)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for k in ("PERCH_ROS2_NAMESPACE", "PERCH_ROS2_NODE_NAME", "PERCH_ROS2_REMAP"):
        env.pop(k, None)
    frames = os.path.join(logs, "..", "frames")
    topic = "/camera/image_raw" if mode == "image" else "/camera/image_raw/compressed"
    unsupported = IMAGE_UNSUPPORTED if mode == "image" else 0
    expected = IMAGE_N + unsupported
    peer_out, report = os.path.join(logs, "peer.json"), os.path.join(logs, "report.json")
    procs = []

    start = starter(env, logs, procs)

    try:
        # Reliable QoS on perch's side too (the default is sensor data, best effort): with the peer in
        # lockstep, no image can be lost or dropped, so the comparison is exact.
        perch_p = start([args.perch, "run", "--config", "configs/ros2-node.toml", "-q", "--report", report,
                         "--set", f"source.topic=\"{topic}\"", "--set", f"source.end_frame={expected}",
                         "--set", "source.qos={reliability=\"reliable\",history_depth=10}",
                         "--set", "detect.schedule=\"every_frame\"", "--set", "track.frame_rate=10",
                         "--set", "pipeline.budget_ms=60000"], "perch.log", repo)
        peer_p = start([args.python, os.path.join(HERE, "image_peer.py"), "--frames", frames, "--mode", mode,
                        "--topic", topic, "--n", str(IMAGE_N), "--unsupported", str(unsupported), "--out", peer_out,
                        "--timeout", str(args.timeout + 120)], "peer.log", HERE)
        rc_peer = wait(peer_p, args.timeout + 150)
        rc_perch = wait(perch_p, 30)
    finally:
        for p in procs:
            stop(p)
    what = f"ros2 source ({mode}, {'sensor_msgs/Image rgb8, padded rows' if mode == 'image' else 'CompressedImage JPEG'})"
    checks = [(f"{what}: perch ends by itself after source.end_frame = {expected} images", rc_peer == 0 and rc_perch == 0,
               f"peer {rc_peer}, perch {rc_perch}")]
    try:
        with open(peer_out) as f:
            peer = json.load(f)
    except (OSError, ValueError) as e:
        peer = {"sent": [], "received": [], "nodes": [], "errors": [f"no peer result: {e}"]}
    try:
        with open(report) as f:
            rep = json.load(f)
    except (OSError, ValueError) as e:
        rep = {}
        checks.append((f"{what}: perch's report", False, str(e)))
    fr = rep.get("frames", {})
    cap = next((s for s in rep.get("stages", []) if s["name"] == "capture"), {}).get("counters", {})
    dropped = fr.get("dropped", {})
    n_dropped = sum(dropped.values()) if isinstance(dropped, dict) else dropped
    probs = []
    if fr.get("captured") != expected or not rep.get("invariant_ok"):
        probs.append(f"captured {fr.get('captured')} (expected {expected}), invariant_ok {rep.get('invariant_ok')}")
    if cap.get("images_received") != expected or cap.get("images_unsupported_encoding") != unsupported or cap.get("images_malformed") != 0:
        probs.append(f"capture counters {cap}")
    if fr.get("published", 0) + n_dropped != fr.get("captured"):
        probs.append(f"ledger: published {fr.get('published')} + dropped {dropped} != captured {fr.get('captured')}")
    checks.append((f"{what}: ledger exact, unsupported encodings counted as decode errors", not probs,
                   f"captured {fr.get('captured')}, published {fr.get('published')}, dropped {dropped}, capture {cap}" if not probs else "; ".join(probs)))

    sent = {tuple(s["stamp"]): s for s in peer["sent"] if not s.get("unsupported")}
    msgs = [r["msg"] for r in peer["received"]]
    probs = list(peer.get("errors", []))
    if len(msgs) != fr.get("published"):
        probs.append(f"received {len(msgs)} Detection2DArray, perch published {fr.get('published')}")
    if len(sent) != IMAGE_N:
        probs.append(f"sent {len(sent)} images")
    stamps = [stamp_key(m) for m in msgs]
    if len(set(stamps)) != len(stamps):
        probs.append("a stamp arrived twice")
    for m in msgs:
        key = stamp_key(m)
        if key not in sent:
            probs.append(f"message stamp {key} is no image's stamp")
            break
        ids = {m["header"]["frame_id"]} | {d["header"]["frame_id"] for d in m["detections"]}
        if ids != {"cam_optical"} or any(stamp_key(d) != key for d in m["detections"]):
            probs.append(f"message {key}: frame ids {ids} / detection stamps not the image's")
            break
    checks.append((f"{what}: one Detection2DArray per published image, each with the image's stamp and frame_id", not probs,
                   f"{len(msgs)} messages for {len(sent)} images" if not probs else "; ".join(probs[:5])))

    probs, boxes = [], 0
    by_stamp = {stamp_key(m): m for m in msgs}
    for key, s in sorted(sent.items()):
        m = by_stamp.get(key)
        r = reference.get(s["index"])
        if m is None or r is None:
            probs.append(f"image {s['index']}: {'no message' if m is None else 'no reference line'}")
            continue
        boxes += len(m["detections"])
        probs += [f"image {s['index']}: {p}" for p in compare_frame(r, m)][:3]
    if len(reference) != IMAGE_N:
        probs.append(f"the folder replay published {len(reference)} frames, expected {IMAGE_N}")
    if not boxes:
        probs.append("no detections at all (the comparison would prove nothing)")
    checks.append((f"{what}: detections equal the folder replay's (boxes within {BOX_TOL_PX} px, scores within {SCORE_TOL}, "
                   "same classes and track ids)", not probs, f"{boxes} detections in {len(by_stamp)} frames" if not probs else "; ".join(probs[:5])))

    with open(os.path.join(logs, "perch.log"), errors="replace") as f:
        log = f.read()
    named = log.count("are not supported")
    skipped_warn = sum(1 for line in log.splitlines() if "skipped:" in line and "WARN" in line)
    errors = [line for line in log.splitlines() if " ERROR " in line or line.startswith("ERROR")]
    nodes = peer.get("nodes", [])
    probs = []
    if mode == "image" and (named != 1 or skipped_warn != 1):
        probs.append(f"unsupported encoding named {named} times, {skipped_warn} WARN skipped lines (expected 1 and 1 for {unsupported} images)")
    if nodes.count("/perch/perch") != 1:
        probs.append(f"graph nodes {nodes}: expected /perch/perch once (source and publisher share one node)")
    if errors:
        probs.append(f"ERROR lines: {errors[:2]}")
    checks.append((f"{what}: one perch node in the graph; unsupported encodings named once in the log; no ERROR lines", not probs,
                   f"nodes {sorted(nodes)}" if not probs else "; ".join(probs)))
    rtts = sorted(s["rtt_s"] for s in peer["sent"] if "rtt_s" in s)
    if rtts:
        print(f"live_matrix: {what}: image -> detections round trip p50 {rtts[len(rtts) // 2] * 1000:.0f} ms, "
              f"max {rtts[-1] * 1000:.0f} ms (first includes nothing but the image: warm-up happens before)", file=sys.stderr)
    return checks


def run_image_source_suite(args, logs_root):
    """Both image-source runs, each with one retry; the frames and the reference are made once."""
    repo = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
    os.makedirs(logs_root, exist_ok=True)
    decode = os.path.join(os.path.dirname(os.path.abspath(args.fixture)), "decode_frames")
    frames = os.path.join(logs_root, "frames")
    r = subprocess.run([decode, os.path.join(repo, "datasets", "vtest", "img1"), str(IMAGE_N), frames],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return [("ros2 source: frames decoded with perch's decoder", False, (r.stderr or r.stdout).strip()[-300:])]
    rc, reference = image_source_reference(args, logs_root, repo)
    if rc != 0 or len(reference) != IMAGE_N:
        return [("ros2 source: folder replay reference", False, f"perch exit {rc}, {len(reference)} frames (see {logs_root}/reference.log)")]
    checks = []
    for mode in ("image", "compressed"):
        for attempt in range(2):
            logs = os.path.join(logs_root, f"source-{mode}-{attempt + 1}")
            got = run_image_source_e2e(args, logs, mode, reference)
            if all(ok for _, ok, _ in got):
                break
            print(f"live_matrix: ros2 source ({mode}) attempt {attempt + 1} failed (logs kept in {logs})", file=sys.stderr)
        checks += got
    return checks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", required=True, help="path of the built ros2_fixture example")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--logs", default=None)
    ap.add_argument("--domain", type=int, default=int(os.environ.get("PERCH_ROS2_TEST_DOMAIN", "61")))
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--perch", default=None, help="also check the real `perch run` binary against rclpy")
    ap.add_argument("--perch-config", default="configs/ros2.toml")
    ap.add_argument("--only-image-source", action="store_true",
                    help="with --perch: run only the `[source] kind = \"ros2\"` checks (quicker while working on them)")
    args = ap.parse_args()
    lo, names = only_loopback()
    if not lo:
        print(f"live_matrix: refusing to run with network interfaces {names}: run it through run-live.sh "
              "(unshare -rn, multicast on lo) so DDS stays on this machine", file=sys.stderr)
        return 2
    logs_root = args.logs or os.path.join("/tmp", f"perch-ros2-live-{os.getpid()}")
    checks = []
    for attempt in range(0 if args.only_image_source and args.perch else 2):
        logs = os.path.join(logs_root, f"attempt-{attempt + 1}")
        checks = run_attempt(args, attempt, logs)
        if all(ok for _, ok, _ in checks):
            break
        print(f"live_matrix: attempt {attempt + 1} failed (logs kept in {logs})", file=sys.stderr)
        for name, ok, detail in checks:
            if not ok:
                print(f"  FAIL {name}: {detail}", file=sys.stderr)
        if attempt == 0:
            print("live_matrix: retrying once", file=sys.stderr)
    if args.perch:
        e2e = []
        for attempt in range(0 if args.only_image_source else 2):
            logs = os.path.join(logs_root, f"perch-attempt-{attempt + 1}")
            e2e = run_perch_e2e(args, logs)
            if all(ok for _, ok, _ in e2e):
                break
            print(f"live_matrix: perch run attempt {attempt + 1} failed (logs kept in {logs})", file=sys.stderr)
        checks += e2e
        checks += run_image_source_suite(args, logs_root)
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
    passed = sum(1 for _, ok, _ in checks if ok)
    failed = len(checks) - passed
    if failed == 0 and not args.logs:
        shutil.rmtree(logs_root, ignore_errors=True)
    elif failed:
        print(f"live_matrix: logs kept in {logs_root}")
    print(f"live: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
