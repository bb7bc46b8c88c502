"""Publish the stamped test picture over WHIP (FFmpeg's whip muxer through PyAV), in real time.

    python -m latency_lab.publisher URL [--token T] [--size 1280x720] [--fps 30] [--seconds 20]

Runs as a child process of `scenecloud probe`: PyAV holds the GIL while the muxer does its
HTTP/ICE/DTLS set-up. The token comes from --token or SCENECLOUD_PUBLISH_TOKEN (the probe uses
the environment so the token is not visible in `ps`).

Every frame is stamped with the wall clock read just before it is drawn (its capture time);
frames are due at absolute deadlines t0 + n/fps (t0 = when the WHIP session is up), and a
frame whose deadline passed by more than a frame is skipped (a camera would drop it; counted).
Audio sample s is captured at t0 + s/48000, with a 1 kHz beep at every whole second of that
clock; media timestamps are n/fps and s/48000, so A/V sync in the stream is the capture clock.

libx264 with bf=0 (WebRTC has no B-frames), tune=zerolatency (no look-ahead: a frame leaves the
encoder when it is encoded), preset veryfast, keyframe every 2 s; libopus. Everything else is
the muxer's default.

stdout gets one JSON object per line: {"event": "posting", "wall": t} just before the WHIP POST,
{"event": "connected", "wall": t0} when the session is up, {"event": "done", "frames": n,
"skipped": k, ...} at the end. Errors (401/403/404, refused, …) → one line on stderr, exit 2.
SIGTERM/SIGINT stop it cleanly: closing the muxer sends the WHIP DELETE.
"""

from __future__ import annotations

import argparse
import fractions
import json
import os
import re
import signal
import sys
import time

import numpy as np

from . import stamp

TOKEN_ENV = "SCENECLOUD_PUBLISH_TOKEN"
AUDIO_RATE = 48000
AUDIO_FRAME = 960  # 20 ms, Opus's usual frame


def emit(**msg: object) -> None:
    print(json.dumps(msg), flush=True)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    if w < 64 or h < 64 or w % 2 or h % 2 or w > 4096 or h > 4096:
        raise argparse.ArgumentTypeError(f"size {text}: even numbers from 64 to 4096")
    return w, h


def describe_error(exc: BaseException) -> str:
    text = str(exc).split("; last error log")[0].splitlines()[0]
    m = re.search(r"Server returned (\d{3})[^:]*", text)
    status = m.group(0).replace("Server returned ", "") if m else ""
    if status[:3] in ("401", "403"):
        return f"WHIP publish refused: wrong publish token ({status.strip()})"
    if status[:3] == "404":
        return "WHIP publish refused: unknown production (404 Not Found)"
    if status:
        return f"WHIP publish refused: {status.strip()}"
    if isinstance(exc, ConnectionError) or "refused" in text.lower():
        return f"WHIP server unreachable: {text}"
    return f"WHIP publish failed: {type(exc).__name__}: {text}"


class StopSignal:
    """True once SIGINT or SIGTERM arrived: a publisher's send loop checks it and ends cleanly
    (closing the muxer sends the WHIP DELETE). For the PyAV WHIP publishers: this probe's,
    the benchmarks' clip replayer and the tests' test-pattern publisher."""

    def __init__(self) -> None:
        self._set = False
        signal.signal(signal.SIGINT, self._on)
        signal.signal(signal.SIGTERM, self._on)

    def _on(self, *_: object) -> None:
        self._set = True

    def __bool__(self) -> bool:
        return self._set


def run(url: str, token: str, size: tuple[int, int], fps: int, seconds: float,
        audio: bool = True) -> int:
    import av

    stop = StopSignal()
    w, h = size
    emit(event="posting", wall=time.time())
    try:
        out = av.open(url, mode="w", format="whip", options={"authorization": token})
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"bf": "0", "tune": "zerolatency", "preset": "veryfast",
                      "g": str(2 * fps)}
        as_ = out.add_stream("libopus", rate=AUDIO_RATE, layout="stereo") if audio else None
        out.start_encoding()  # the WHIP POST, ICE and DTLS happen here
    except (av.FFmpegError, OSError) as exc:
        print(f"latency_lab.publisher: {describe_error(exc)}", file=sys.stderr, flush=True)
        return 2
    t0 = time.time()
    t0_ms = t0 * 1000.0
    emit(event="connected", wall=t0, fps=fps, width=w, height=h)
    tb_v, tb_a = fractions.Fraction(1, fps), fractions.Fraction(1, AUDIO_RATE)
    n = sent = skipped = apts = 0
    total = round(seconds * fps)
    late_max = 0.0
    try:
        while not stop and n < total:
            due = t0 + n / fps
            now = time.time()
            if now - due > 1.0 / fps:  # behind by more than a frame: drop it like a camera
                skipped += 1
                n += 1
                continue
            late_max = max(late_max, now - due)
            ms = round(now * 1000)
            frame = av.VideoFrame.from_ndarray(stamp.stamped_yuv(w, h, ms), format="yuv420p")
            frame.pts, frame.time_base = n, tb_v
            for pkt in vs.encode(frame):
                out.mux(pkt)
            sent += 1
            while as_ is not None and apts < (n + 1) * AUDIO_RATE // fps:
                mono = stamp.beep_signal(t0_ms, apts, AUDIO_FRAME, AUDIO_RATE)
                pcm = (mono * 32767).astype(np.int16)
                af = av.AudioFrame.from_ndarray(np.repeat(pcm, 2).reshape(1, -1), format="s16",
                                                layout="stereo")
                af.sample_rate, af.pts, af.time_base = AUDIO_RATE, apts, tb_a
                apts += AUDIO_FRAME
                for pkt in as_.encode(af):
                    out.mux(pkt)
            n += 1
            delay = t0 + n / fps - time.time()
            if delay > 0:
                time.sleep(delay)
    except (av.FFmpegError, OSError) as exc:
        print(f"latency_lab.publisher: {describe_error(exc)}", file=sys.stderr, flush=True)
        return 1
    finally:
        try:
            out.close()  # WHIP DELETE
        except (av.FFmpegError, OSError) as exc:  # pragma: no cover - server already gone
            print(f"latency_lab.publisher: closing: {exc}", file=sys.stderr, flush=True)
    emit(event="done", frames=sent, skipped=skipped, stopped=bool(stop),
         late_max_ms=round(late_max * 1000, 1), seconds=round(time.time() - t0, 3))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m latency_lab.publisher",
                                description="publish a stamped test picture over WHIP")
    p.add_argument("url", help="WHIP endpoint, e.g. http://host:8080/whip/<production>/probe")
    p.add_argument("--token", help=f"publish token (default: ${TOKEN_ENV})")
    p.add_argument("--size", type=parse_size, default=(1280, 720), help="WIDTHxHEIGHT")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--no-audio", action="store_true")
    a = p.parse_args(argv)
    token = a.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        p.error(f"no token: give --token or set {TOKEN_ENV}")
    if not 1 <= a.fps <= 120:
        p.error("--fps must be 1..120")
    import av.logging

    av.logging.set_level(av.logging.FATAL)  # we say what went wrong ourselves
    return run(a.url, token, a.size, a.fps, a.seconds, audio=not a.no_audio)


if __name__ == "__main__":
    sys.exit(main())
