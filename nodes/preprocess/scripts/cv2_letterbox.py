"""Ultralytics' LetterBox(auto=False, scaleup=True, center=True) with OpenCV, as an independent reference.

usage: cv2_letterbox.py IN.raw WIDTH HEIGHT FORMAT TARGET OUT.raw
FORMAT: rgb8 | bgr8 | yuyv | nv12. Writes the model input as float32 CHW RGB / 255 (raw, little endian).
The letterbox arithmetic follows ultralytics/data/augment.py LetterBox.__call__ (the formulas, restated).
"""
import sys

import cv2
import numpy as np


def main() -> None:
    src, w, h, fmt, t, out = sys.argv[1:]
    w, h, t = int(w), int(h), int(t)
    raw = np.fromfile(src, np.uint8)
    if fmt == "rgb8":
        bgr = cv2.cvtColor(raw.reshape(h, w, 3), cv2.COLOR_RGB2BGR)
    elif fmt == "bgr8":
        bgr = raw.reshape(h, w, 3)
    elif fmt == "yuyv":
        bgr = cv2.cvtColor(raw.reshape(h, w, 2), cv2.COLOR_YUV2BGR_YUYV)
    elif fmt == "nv12":
        bgr = cv2.cvtColor(raw.reshape(h * 3 // 2, w), cv2.COLOR_YUV2BGR_NV12)
    else:
        raise SystemExit(f"unknown format {fmt}")
    shape = bgr.shape[:2]
    r = min(t / shape[0], t / shape[1])
    new_unpad = int(round(shape[1] * r)), int(round(shape[0] * r))
    dw, dh = (t - new_unpad[0]) / 2, (t - new_unpad[1]) / 2
    if shape[::-1] != new_unpad:
        bgr = cv2.resize(bgr, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    img = cv2.copyMakeBorder(bgr, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    x = np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1)).astype(np.float32) / 255.0
    x.astype("<f4").tofile(out)


if __name__ == "__main__":
    main()
