#!/usr/bin/env python3
"""Check a perch `.rrd` recording with Rerun's own tools (PyPI rerun-sdk==0.36.3).

    check_rrd.py [--expect EXPECT.json] [--dump CONTENT.json] [--allow-no-footer] RECORDING.rrd

1. `rerun rrd verify RECORDING.rrd` must pass.
2. `rerun.experimental.RrdReader(...).store()` must open it: that needs the footer/manifest the
   SDK writes when the recording is closed, so it also proves the file was finished cleanly
   (`--allow-no-footer` reads it as a stream instead, for files saved by `rerun --save`).
3. The content (entity paths, frames, boxes per frame, labels, ...) is compared with EXPECT.json.

EXPECT.json schema (every key optional; "seq" keys are `Frame::seq` as strings):

    {
      "frames": 8,                                  # frames in the recording (distinct `frame` values
                                                    #   of camera/image/detections, else camera/image)
      "entities": ["camera/image", ...],            # entity paths that must exist
      "absent_entities": ["camera/image/tracks"],   # entity paths that must not exist
      "boxes_per_frame": {"0": 2, "1": 3},          # Boxes2D count at camera/image/detections
      "labels": {"0": ["person", "person"]},        # class name of each box, in order (the label
                                                    #   text is "<class> <score>[ #<track>]")
      "track_ids": {"0": [1, 2, -1]},               # track id per box, -1 = untracked
      "class_names": ["person", "bicycle"],         # AnnotationContext at "/" maps i -> name
      "image_size": [768, 576],                     # size of every logged camera image
      "raw_color_model": "BGR",                     # raw images: the ImageFormat colour model
      "latency_ms": {"detect": 40.0},               # every metrics/latency/<stage> value, within 0.5 ms
      "allow_missing_frames": false,                # true: frames listed above may be absent (the
                                                    #   tap dropped them: `rerun.dropped` in the report);
                                                    #   every frame present must still match
      "require_frames": [39],                       # frames that must be present
      "blueprint": true                             # the file carries a blueprint store (the layout)
    }

Exit status 0 when everything matches; 1 with one line per mismatch otherwise.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import rerun.experimental as rx

DETECTIONS = "camera/image/detections"
IMAGE = "camera/image"
LABEL_RE = re.compile(r"^(?P<cls>.+?) (?P<score>\d+\.\d\d)(?: #(?P<track>\d+))?$")
COLOR_MODELS = {1: "L", 2: "RGB", 3: "RGBA", 4: "BGR", 5: "BGRA"}


def rerun_cli() -> Path:
    return Path(sys.executable).with_name("rerun")


def verify(rrd: Path, allow_no_footer: bool = False) -> list[str]:
    p = subprocess.run([str(rerun_cli()), "rrd", "verify", str(rrd)], capture_output=True, text=True)
    out = p.stdout + p.stderr
    tail = out.strip().splitlines()[-1:] or [""]
    if p.returncode != 0 and allow_no_footer and "Missing RRD footer" in out and "with 1 errors" in out:
        print("rerun rrd verify: only error is the missing footer (allowed by --allow-no-footer)")
        return []
    if p.returncode != 0:
        return [f"`rerun rrd verify` failed (exit {p.returncode}): {p.stdout}{p.stderr}"]
    print(f"rerun rrd verify: {tail[0]}")
    return []


def _col(rb: pa.RecordBatch, name: str) -> list | None:
    i = rb.schema.get_field_index(name)
    return None if i < 0 else rb.column(i).to_pylist()


def read_recording(rrd: Path, require_footer: bool = True) -> dict:
    """Everything perch logs, per entity and per frame, as plain Python values."""
    reader = rx.RrdReader(str(rrd))
    recordings = reader.recordings()
    if not recordings:
        raise SystemExit(f"{rrd}: no recording store in the file")
    if require_footer:
        # Needs the footer/manifest written when the recording is closed: fails on an unfinished file.
        chunks = reader.store().stream().to_chunks()
    else:
        chunks = reader.stream().to_chunks()
    content: dict = {
        "recordings": len(recordings),
        "blueprints": len(reader.blueprints()),
        "entities": set(),
        "static": {},
        "rows": defaultdict(lambda: defaultdict(list)),  # entity -> frame -> [row dict]
    }
    for chunk in chunks:
        entity = chunk.entity_path.lstrip("/") or "/"
        rb = chunk.to_record_batch()
        names = [n for n in rb.schema.names if n not in ("rerun.controls.RowId", "log_time", "log_tick",
                                                          "frame", "source_time", "capture_time")]
        if entity.startswith("__properties"):
            continue
        content["entities"].add(entity)
        if chunk.is_static:
            for n in names:
                content["static"][(entity, n)] = rb.column(rb.schema.get_field_index(n)).to_pylist()[-1]
            continue
        frames = _col(rb, "frame")
        if frames is None:
            continue
        cols = {n: rb.column(rb.schema.get_field_index(n)) for n in names}
        for r, seq in enumerate(frames):
            row = {n: c[r].as_py() for n, c in cols.items() if c[r].is_valid}
            content["rows"][entity][seq].append(row)
    return content


def merged(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        out.update(r)
    return out


def image_size(row: dict) -> tuple[tuple[int, int] | None, str | None]:
    if "EncodedImage:blob" in row:
        from PIL import Image

        blob = row["EncodedImage:blob"][0]  # one image instance per row
        data = bytes(blob if isinstance(blob, (bytes, bytearray)) else bytearray(blob))
        with Image.open(io.BytesIO(data)) as im:
            return im.size, "JPEG:" + im.mode
    if "Image:format" in row:
        f = row["Image:format"][0]
        return (f["width"], f["height"]), COLOR_MODELS.get(f.get("color_model"), str(f.get("color_model")))
    return None, None


def summarize(content: dict) -> dict:
    """The checkable view: frames, boxes, labels, track ids, image sizes, latencies."""
    det_rows = content["rows"].get(DETECTIONS, {})
    img_rows = content["rows"].get(IMAGE, {})
    frames = sorted(det_rows) if det_rows else sorted(img_rows)
    per_frame = {}
    for seq in frames:
        d = merged(det_rows.get(seq, []))
        labels = d.get("Boxes2D:labels") or []
        parsed = [LABEL_RE.match(l) for l in labels]
        centers = d.get("Boxes2D:centers") or []
        halves = d.get("Boxes2D:half_sizes") or []
        boxes = [[c[0] - h[0], c[1] - h[1], c[0] + h[0], c[1] + h[1]] for c, h in zip(centers, halves)]
        size, model = image_size(merged(img_rows.get(seq, [])))
        per_frame[str(seq)] = {
            "boxes": boxes,
            "n_boxes": len(halves),
            "labels": labels,
            "classes": [m.group("cls") if m else None for m in parsed],
            "scores": d.get("score") or [],
            "class_ids": d.get("Boxes2D:class_ids") or [],
            "track_ids": d.get("track_id") or [],
            "image_size": list(size) if size else None,
            "image_kind": model,
        }
    latency = {}
    for entity, rows in content["rows"].items():
        if entity.startswith("metrics/latency/"):
            latency[entity.split("/", 2)[2]] = [v for seq in sorted(rows) for r in rows[seq]
                                                for v in (r.get("Scalars:scalars") or [])]
    ctx = content["static"].get(("/", "AnnotationContext:context"))
    class_names = None
    if ctx is not None:
        # One AnnotationContext instance: a list of (class id, description) entries.
        class_names = {e["class_id"]: e["class_description"]["info"]["label"] for e in ctx[0]}
    return {
        "recordings": content["recordings"],
        "blueprints": content["blueprints"],
        "entities": sorted(content["entities"]),
        "frames": frames,
        "per_frame": per_frame,
        "latency_ms": latency,
        "class_names": class_names,
    }


def compare(s: dict, exp: dict) -> list[str]:
    errs: list[str] = []
    present = set(s["frames"])
    if "frames" in exp and len(present) != exp["frames"]:
        errs.append(f"frames: recording has {len(present)}, expected {exp['frames']}")
    for e in exp.get("entities", []):
        if e not in s["entities"]:
            errs.append(f"entity {e!r} missing (recording has {s['entities']})")
    for e in exp.get("absent_entities", []):
        if e in s["entities"]:
            errs.append(f"entity {e!r} present but should not be")
    if exp.get("blueprint") and s["blueprints"] < 1:
        errs.append("no blueprint store in the file")
    allow_missing = exp.get("allow_missing_frames", False)
    for seq in exp.get("require_frames", []):
        if seq not in present:
            errs.append(f"frame {seq} missing")
    pf = s["per_frame"]
    for key, field in (("boxes_per_frame", "n_boxes"), ("labels", "classes"), ("track_ids", "track_ids")):
        want_all = exp.get(key)
        if want_all is None:
            continue
        for seq, want in want_all.items():
            if seq not in pf:
                if not allow_missing:
                    errs.append(f"{key}: frame {seq} missing from the recording")
                continue
            got = pf[seq][field]
            if got != want:
                errs.append(f"{key}[{seq}]: recording has {got}, expected {want}")
    if "boxes_per_frame" in exp:
        extra = [seq for seq in pf if seq not in exp["boxes_per_frame"]]
        if extra:
            errs.append(f"frames {extra[:10]} are in the recording but not expected")
    if "image_size" in exp:
        for seq, f in pf.items():
            if f["image_size"] != exp["image_size"]:
                errs.append(f"image_size[{seq}]: recording has {f['image_size']}, expected {exp['image_size']}")
    if "raw_color_model" in exp:
        for seq, f in pf.items():
            if f["image_kind"] != exp["raw_color_model"]:
                errs.append(f"image kind[{seq}]: {f['image_kind']}, expected {exp['raw_color_model']}")
    if "class_names" in exp:
        want = {i: n for i, n in enumerate(exp["class_names"])}
        # JSON keys are strings; compare as such.
        want = {str(k): v for k, v in want.items()}
        s = {**s, "class_names": {str(k): v for k, v in (s["class_names"] or {}).items()}}
        if s["class_names"] != want:
            errs.append(f"AnnotationContext: {s['class_names']}, expected {want}")
    for stage, ms in exp.get("latency_ms", {}).items():
        got = s["latency_ms"].get(stage)
        if not got:
            errs.append(f"latency of stage {stage!r}: no values logged")
        elif any(abs(v - ms) > 0.5 for v in got):
            errs.append(f"latency of stage {stage!r}: {got}, expected {ms} each")
    return errs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rrd", type=Path)
    ap.add_argument("--expect", type=Path, help="expected content (schema above)")
    ap.add_argument("--dump", type=Path, help="write the extracted content as JSON")
    ap.add_argument("--allow-no-footer", action="store_true",
                    help="accept a file without footer (e.g. saved by `rerun --save` from a gRPC stream)")
    args = ap.parse_args()
    if not args.rrd.is_file():
        print(f"{args.rrd}: no such file", file=sys.stderr)
        return 1
    errs = verify(args.rrd, args.allow_no_footer)
    s = summarize(read_recording(args.rrd, require_footer=not args.allow_no_footer))
    n_boxes = sum(f["n_boxes"] for f in s["per_frame"].values())
    print(f"{args.rrd}: {s['recordings']} recording(s), {s['blueprints']} blueprint(s), "
          f"{len(s['frames'])} frames, {n_boxes} boxes, {len(s['entities'])} entities")
    for e in s["entities"]:
        print(f"  {e}")
    if args.dump:
        args.dump.write_text(json.dumps(s, indent=1))
    if args.expect:
        errs += compare(s, json.loads(args.expect.read_text()))
    for e in errs:
        print(f"MISMATCH {e}")
    print("OK" if not errs else f"FAILED: {len(errs)} mismatch(es)")
    return 0 if not errs else 1


if __name__ == "__main__":
    sys.exit(main())
