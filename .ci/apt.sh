#!/usr/bin/env bash
# System packages the build and tests need (each is named in the README). Idempotent.
#   pkg-config, g++                       : -sys crates; ROS 2 message type support (vision_msgs) built by the ROS venv
#   gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user : the Jetson's aarch64 code, tested under emulation
#   iproute2, util-linux                  : private network namespace (unshare -rn) for live DDS tests
#   python3-venv                          : the reference checkers' virtual environments (PyPI)
#   ffmpeg                                : `perch run --save-video out.mp4` (an external encoder) and ffprobe, its test
#   systemd                               : systemd-analyze verify of launch/perch.service
#   libclang-dev                          : bindgen for nokhwa's V4L2 bindings (perch's `camera` feature)
#   libjpeg-dev, linux-libc-dev           : the V4L2 camera emulator of the camera tests (tests/v4l2-emu)
#   libgstreamer1.0-dev, libgstreamer-plugins-base1.0-dev : perch's `video` feature (gstreamer-rs), build time
#   gstreamer1.0-plugins-{base,good,bad}, gstreamer1.0-libav : its run time: demuxers, rtspsrc, h264parse, avdec_h264
#   python3-gi, gir1.2-gst-rtsp-server-1.0 : the RTSP server of the stream tests (nodes/capture/scripts/rtsp_server.py)
set -euo pipefail
PKGS=(pkg-config g++ gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user iproute2 util-linux python3-venv ffmpeg systemd
      libclang-dev libjpeg-dev linux-libc-dev
      libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-base gstreamer1.0-plugins-good
      gstreamer1.0-plugins-bad gstreamer1.0-libav python3-gi gir1.2-gst-rtsp-server-1.0)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
