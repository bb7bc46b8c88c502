"""Small helpers for tests: real WHIP publishers (aiortc peers, PyAV's whip muxer)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtcdtlstransport import RTCCertificate, generate_certificate
from cryptography.hazmat.primitives.asymmetric import rsa

from media_server.ice import restrict_host_addresses


async def wait_for(pred: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float,
                   what: str, interval: float = 0.05) -> None:
    """Poll `pred` until true or fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        res = pred()
        if asyncio.iscoroutine(res):
            res = await res
        if res:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def stop_process(proc: asyncio.subprocess.Process, timeout: float = 10) -> None:
    """SIGTERM a child started with asyncio, SIGKILL it if it does not go in time."""
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()


class ColorTrack(VideoStreamTrack):
    """Frames of one colour (as yuv420p) at a given size, 30 fps."""

    def __init__(self, width: int, height: int, rgb: tuple[int, int, int] = (200, 30, 30)):
        super().__init__()
        img = np.zeros((height, width, 3), np.uint8)
        img[:] = rgb
        self._frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        self.sending = asyncio.Event()  # clear it to stop sending frames (connection stays up)
        self.sending.set()

    async def recv(self) -> av.VideoFrame:
        await self.sending.wait()
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self._frame.to_ndarray(), format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneTrack(AudioStreamTrack):
    """A 440 Hz tone, 20 ms frames at 48 kHz stereo."""

    def __init__(self) -> None:
        super().__init__()
        self._n = 0

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()  # paces and stamps
        t = (np.arange(frame.samples) + self._n) / 48000
        self._n += frame.samples
        tone = (0.2 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
        data = np.repeat(tone, 2).reshape(1, -1)
        out = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
        out.sample_rate, out.pts, out.time_base = 48000, frame.pts, frame.time_base
        return out


class RsaCertificate(RTCCertificate):
    """A DTLS identity like GStreamer webrtcbin's: RSA 2048, ECDHE-RSA suites only."""

    @classmethod
    def generateCertificate(cls) -> RsaCertificate:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(key=key, cert=generate_certificate(key))  # type: ignore[arg-type]

    def _create_ssl_context(self, srtp_profiles: list[Any]) -> Any:
        ctx = super()._create_ssl_context(srtp_profiles)
        ctx.set_cipher_list(b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:"
                            b"ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA")
        return ctx


@dataclass
class AiortcPublisher:
    pc: RTCPeerConnection
    location: str | None
    status: int
    answer: str
    response_headers: Any = field(default_factory=dict)
    video: ColorTrack | None = None

    async def close(self) -> None:
        await self.pc.close()


async def aiortc_publish(http: aiohttp.ClientSession, url: str, token: str, *,
                         width: int = 640, height: int = 360, codec: str | None = None,
                         audio: bool = True, rgb: tuple[int, int, int] = (200, 30, 30),
                         rsa_certificate: bool = False) -> AiortcPublisher:
    """Publish a colour track (+ tone) with an aiortc peer; codec 'VP8', 'H264' or None.

    `rsa_certificate` gives the peer an RSA-2048 DTLS identity, as GStreamer's webrtcbin has."""
    pc = RTCPeerConnection()
    video = ColorTrack(width, height, rgb)
    if rsa_certificate:
        pc._RTCPeerConnection__certificates = [  # type: ignore[attr-defined]
            RsaCertificate.generateCertificate()]
    vt = pc.addTransceiver(video, direction="sendonly")
    if codec:
        from aiortc.rtcrtpsender import RTCRtpSender

        caps = RTCRtpSender.getCapabilities("video").codecs
        vt.setCodecPreferences([c for c in caps if c.mimeType == f"video/{codec}"])
    if audio:
        pc.addTransceiver(ToneTrack(), direction="sendonly")
    offer = await pc.createOffer()
    # gather on loopback only
    restrict_host_addresses(pc, ["127.0.0.1"])
    await pc.setLocalDescription(offer)
    async with http.post(url, data=pc.localDescription.sdp,
                         headers={"Authorization": f"Bearer {token}",
                                  "Content-Type": "application/sdp"}) as r:
        text = await r.text()
        pub = AiortcPublisher(pc=pc, location=r.headers.get("Location"), status=r.status,
                              answer=text, response_headers=r.headers.copy(), video=video)
    if pub.status == 201:
        await pc.setRemoteDescription(RTCSessionDescription(text, "answer"))
    return pub


class PyavWhipPublisher:
    """FFmpeg's whip muxer (through PyAV) on its default settings, in a child process.

    A child process because PyAV holds the GIL while FFmpeg does its HTTP/ICE/DTLS set-up,
    which would starve a server running in the test's own event loop."""

    def __init__(self, url: str, token: str, *, width: int = 640, height: int = 360,
                 fps: int = 30, audio: bool = True, seconds: float = 60) -> None:
        self.args = [sys.executable, "-m", "tests.tools.whip_publisher", url, "--token", token,
                     "--size", f"{width}x{height}", "--fps", str(fps),
                     "--seconds", str(seconds)] + ([] if audio else ["--no-audio"])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PyavWhipPublisher:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=Path(__file__).resolve().parent.parent)
        return self

    @property
    def error(self) -> str | None:
        """The child's stderr if it exited with an error, else None."""
        if self.proc is None or self.proc.poll() is None or self.proc.returncode == 0:
            return None
        err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace")
        return f"exit status {self.proc.returncode}: {err[-3000:]}"

    def stop(self, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # the muxer closes: trailer + WHIP DELETE
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
