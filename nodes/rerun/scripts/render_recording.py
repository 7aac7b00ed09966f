#!/usr/bin/env python3
"""Render one frame of a perch `.rrd` as a PNG, from the recording's own data.

    render_recording.py RECORDING.rrd OUT.png [--frame SEQ]

Everything drawn is read back from the file with Rerun's reader (via check_rrd.py): the JPEG the
tap logged at camera/image, the boxes, labels and colours at camera/image/detections, the trails at
camera/image/tracks and the metrics/latency/* series up to that frame. It mimics the default
blueprint (image beside latency plots); it is not a screenshot of the Rerun viewer.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).parent))
from check_rrd import DETECTIONS, IMAGE, merged, read_recording  # noqa: E402

TRACKS = "camera/image/tracks"


def rgba(packed: int | None, default=(255, 200, 0, 255)) -> tuple[int, int, int, int]:
    if packed is None:
        return default
    return ((packed >> 24) & 255, (packed >> 16) & 255, (packed >> 8) & 255, packed & 255)


def font(size: int):
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            pass
    return ImageFont.load_default()


def draw_camera(content: dict, seq: int) -> Image.Image:
    img_row = merged(content["rows"][IMAGE][seq])
    blob = img_row["EncodedImage:blob"][0]
    im = Image.open(io.BytesIO(bytes(bytearray(blob)))).convert("RGB")
    d = ImageDraw.Draw(im, "RGBA")
    f = font(13)
    for strip_row in content["rows"].get(TRACKS, {}).get(seq, []):
        strips = strip_row.get("LineStrips2D:strips") or []
        colors = strip_row.get("LineStrips2D:colors") or []
        for i, pts in enumerate(strips):
            c = rgba(colors[i] if i < len(colors) else None)
            d.line([tuple(p) for p in pts], fill=c, width=3)
    det = merged(content["rows"].get(DETECTIONS, {}).get(seq, []))
    centers = det.get("Boxes2D:centers") or []
    halves = det.get("Boxes2D:half_sizes") or []
    labels = det.get("Boxes2D:labels") or []
    colors = det.get("Boxes2D:colors") or []
    for i, (c, h) in enumerate(zip(centers, halves)):
        col = rgba(colors[i] if i < len(colors) else None)
        box = (c[0] - h[0], c[1] - h[1], c[0] + h[0], c[1] + h[1])
        d.rectangle(box, outline=col, width=2)
        if i < len(labels):
            tb = d.textbbox((box[0], box[1] - 16), labels[i], font=f)
            d.rectangle(tb, fill=(0, 0, 0, 160))
            d.text((box[0], box[1] - 16), labels[i], fill=col, font=f)
    return im


def draw_latency(content: dict, seq: int, width: int, height: int) -> Image.Image:
    panel = Image.new("RGB", (width, height), (24, 24, 28))
    d = ImageDraw.Draw(panel)
    f = font(13)
    series = {}
    for entity, rows in content["rows"].items():
        if entity.startswith("metrics/latency/"):
            pts = [(s, r["Scalars:scalars"][0]) for s in sorted(rows) if s <= seq for r in rows[s]
                   if r.get("Scalars:scalars")]
            if pts:
                series[entity.split("/", 2)[2]] = pts
    d.text((10, 8), "metrics/latency/* (ms) vs frame", fill=(230, 230, 230), font=f)
    if not series:
        return panel
    x0, y0, x1, y1 = 50, 34, width - 12, height - 30
    frames = [s for pts in series.values() for s, _ in pts]
    vmax = max(v for pts in series.values() for _, v in pts) * 1.15 or 1.0
    fmin, fmax = min(frames), max(max(frames), min(frames) + 1)
    d.rectangle((x0, y0, x1, y1), outline=(90, 90, 90))
    for k in range(5):
        v = vmax * k / 4
        y = y1 - (y1 - y0) * k / 4
        d.line((x0, y, x1, y), fill=(50, 50, 55))
        d.text((4, y - 7), f"{v:.0f}", fill=(160, 160, 160), font=f)
    palette = [(230, 120, 60), (90, 170, 240), (120, 210, 120), (220, 90, 200), (240, 220, 90), (200, 200, 200)]
    for k, (name, pts) in enumerate(sorted(series.items())):
        col = palette[k % len(palette)]
        xy = [(x0 + (x1 - x0) * (s - fmin) / (fmax - fmin), y1 - (y1 - y0) * v / vmax) for s, v in pts]
        if len(xy) > 1:
            d.line(xy, fill=col, width=2)
        else:
            d.ellipse((xy[0][0] - 2, xy[0][1] - 2, xy[0][0] + 2, xy[0][1] + 2), fill=col)
    # Legend in two columns under the title.
    for k, name in enumerate(sorted(series)):
        col = palette[k % len(palette)]
        lx, ly = x0 + 8 + (k % 2) * 150, y0 + 6 + (k // 2) * 16
        d.rectangle((lx, ly + 4, lx + 10, ly + 12), fill=col)
        d.text((lx + 14, ly), name, fill=(220, 220, 220), font=f)
    d.text((x0, y1 + 8), f"frame {fmin}", fill=(160, 160, 160), font=f)
    d.text((x1 - 70, y1 + 8), f"frame {fmax}", fill=(160, 160, 160), font=f)
    return panel


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rrd", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--frame", type=int, help="frame to draw (default: the last with an image)")
    args = ap.parse_args()
    content = read_recording(args.rrd)
    frames = sorted(content["rows"].get(IMAGE, {}))
    if not frames:
        print(f"{args.rrd}: no camera/image frames (was image = \"none\"?)", file=sys.stderr)
        return 1
    seq = args.frame if args.frame is not None else frames[-1]
    cam = draw_camera(content, seq)
    plot = draw_latency(content, seq, 420, cam.height)
    out = Image.new("RGB", (cam.width + plot.width, cam.height + 24), (12, 12, 14))
    out.paste(cam, (0, 24))
    out.paste(plot, (cam.width, 24))
    ImageDraw.Draw(out).text(
        (8, 4), f"{args.rrd.name}, frame {seq}: drawn from the recording's data by render_recording.py",
        fill=(200, 200, 200), font=font(13))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.save(args.out, optimize=True)
    print(f"wrote {args.out} ({out.width}x{out.height}) from frame {seq} of {args.rrd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
