"""GStreamer's webrtcbin publishes over WHIP on its defaults: an RSA DTLS certificate, which
aiortc rejects out of the box (our DTLS context takes it)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Server
from tests.utils import stop_process, wait_for

SYSTEM_PY = "/usr/bin/python3"
SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "gst_whip_publisher.py"


def gstreamer_ready() -> str | None:
    """None when Debian's python3-gi and GStreamer's webrtcbin are usable, else why not."""
    probe = ("import gi; gi.require_version('Gst','1.0'); gi.require_version('GstWebRTC','1.0');"
             "import ctypes; ctypes.CDLL('libnice.so.10');"
             "from gi.repository import Gst; Gst.init(None);"
             "assert Gst.ElementFactory.find('webrtcbin'), 'no webrtcbin';"
             "assert Gst.ElementFactory.find('nicesrc'), 'no libnice plugin'")
    try:
        r = subprocess.run([SYSTEM_PY, "-c", probe], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if r.returncode == 0 else r.stderr.decode()[-300:]


WHY_NOT = gstreamer_ready()


@pytest.mark.slow
@pytest.mark.skipif(WHY_NOT is not None, reason=f"GStreamer webrtcbin unavailable: {WHY_NOT}")
@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_gstreamer_webrtcbin_publishes(server: Server, codec: str) -> None:
    prod = await server.create_production()
    proc = await asyncio.create_subprocess_exec(
        SYSTEM_PY, str(SCRIPT), f"{server.url}/whip/quake/gst", prod["publish_token"],
        "--codec", codec, "--seconds", "60", "--host-address", "127.0.0.1",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            raise AssertionError((await proc.stderr.read()).decode()[-2000:])
        assert json.loads(line)["status"] == 201

        async def live() -> bool:
            srcs = (await server.production("quake", prod["director_token"]))["sources"]
            s = next((s for s in srcs if s["id"] == "gst"), None)
            return bool(s and s["frames_received"] >= 10 and s["audio_frames_received"] > 0)

        await wait_for(live, 30, "frames from GStreamer webrtcbin")
        s = next(s for s in (await server.production("quake", prod["director_token"]))["sources"]
                 if s["id"] == "gst")
        assert (s["width"], s["height"]) == (640, 360)
        assert s["video_codec"] == codec.upper()
    finally:
        await stop_process(proc)
