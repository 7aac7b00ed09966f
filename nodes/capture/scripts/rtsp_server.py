#!/usr/bin/env python3
"""Serve an H.264 MP4 over RTSP on 127.0.0.1: the real counterpart of perch's RTSP tests.

GStreamer's own RTSP server (gst-rtsp-server, through PyGObject: Debian `python3-gi`
`gir1.2-gst-rtsp-server-1.0`), streaming the file at its own frame rate, as a network camera would.

Usage: rtsp_server.py FILE PORT [MOUNT]   (default mount /clip; prints "ready" once listening)
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, port = sys.argv[1], sys.argv[2]
    mount = sys.argv[3] if len(sys.argv) > 3 else "/clip"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    location = path.replace("\\", "\\\\").replace('"', '\\"')
    # config-interval=-1: SPS/PPS with every keyframe, so a client joining mid-stream can decode.
    factory.set_launch(f'( filesrc location="{location}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )')
    factory.set_shared(True)
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: could not listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
