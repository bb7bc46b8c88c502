"""PullInput against real media: an MP4 file (pacing, looping, appearing late), a live
MPEG-TS stream over loopback TCP that drops and comes back, refused and silent servers, and
garbage files."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from media_server.inputs.pull import PullInput
from media_server.source import Source, SourceState

W, H, FPS, SECONDS = 320, 240, 25, 2


def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


class RecordingSource(Source):
    """A Source that remembers every state change its input asked for."""

    def __init__(self) -> None:
        super().__init__("prod", "pull1", "pull")
        self.transitions: list[tuple[SourceState, str | None]] = []

    def set_state(self, state: SourceState, error: str | None = None) -> None:
        self.transitions.append((state, error))
        super().set_state(state, error)


def write_clip(path: Path, fmt: str | None = None, rate: int = 48000,
               layout: str = "stereo") -> Path:
    """SECONDS of H.264 320x240@25 + AAC (440 Hz, 48 kHz stereo unless told)."""
    with av.open(str(path), "w", format=fmt) as c:
        v = c.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.options = {"preset": "ultrafast", "tune": "zerolatency"}
        a = c.add_stream("aac", rate=rate)
        a.layout = layout
        channels = 1 if layout == "mono" else 2
        sent = 0
        for i in range(SECONDS * FPS):
            img = np.full((H, W, 3), (i * 5) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            c.mux(v.encode(frame))
            while sent < (i + 1) * rate // FPS:
                t = (sent + np.arange(1024)) / rate
                s = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                af = av.AudioFrame.from_ndarray(np.stack([s] * channels), format="fltp",
                                                layout=layout)
                af.sample_rate, af.pts = rate, sent
                sent += 1024
                c.mux(a.encode(af))
        c.mux(v.encode())
        c.mux(a.encode())
    return path


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("media")
    write_clip(d / "clip.mp4")
    write_clip(d / "clip.ts", fmt="mpegts")
    write_clip(d / "mono44k.ts", fmt="mpegts", rate=44100, layout="mono")
    return d


@pytest.fixture
def inputs() -> Iterator[list[PullInput]]:
    started: list[PullInput] = []
    yield started
    for p in started:
        p.stop_sync()


def start(inputs: list[PullInput], src: Source, url: str, **kw) -> PullInput:
    p = PullInput(src, url, **kw)
    inputs.append(p)
    p.start()
    return p


def test_file_frames_arrive_paced_by_timestamps(clip_dir: Path, inputs) -> None:
    src = RecordingSource()
    start(inputs, src, str(clip_dir / "clip.mp4"), allowed_file_roots=[clip_dir])
    assert wait_for(lambda: src.frames_received >= 1)
    t0, f0 = time.monotonic(), src.frames_received
    assert wait_for(lambda: src.frames_received >= f0 + 20)
    rate = (src.frames_received - f0) / (time.monotonic() - t0)
    # paced at ~25 fps, not decoded as fast as possible (the low bound only says "it runs":
    # a loaded CI machine may be slow)
    assert 5 <= rate <= 35, rate
    item = src.latest_video()
    assert item is not None
    assert (item.frame.width, item.frame.height, item.frame.format.name) == (W, H, "yuv420p")
    assert item.captured is None and item.arrived <= item.decoded
    assert src.state == "live" and src.error is None
    assert (src.video_codec, src.audio_codec) == ("h264", "aac")
    assert src.info["realtime"] is True and "mp4" in src.info["format"]
    assert src.audio_frames_received > 0 and src.audio.buffered > 0
    assert src.bytes_received > 0


def test_file_loops_at_eof_and_stays_live(clip_dir: Path, inputs) -> None:
    src = RecordingSource()
    start(inputs, src, str(clip_dir / "clip.mp4"), allowed_file_roots=[clip_dir],
          realtime=False)
    assert wait_for(lambda: src.info.get("loops", 0) >= 2)
    assert src.frames_received >= 2 * SECONDS * FPS
    assert src.state == "live"
    assert all(s != "connecting" for s, _ in src.transitions)  # seamless, no reconnect


def test_file_without_loop_ends(clip_dir: Path, inputs) -> None:
    src = RecordingSource()
    p = start(inputs, src, str(clip_dir / "clip.mp4"), allowed_file_roots=[clip_dir],
              realtime=False, loop_files=False)
    assert wait_for(lambda: src.state == "ended")
    assert src.frames_received == SECONDS * FPS
    assert wait_for(lambda: not p.running, timeout=2)


def test_missing_file_reconnects_when_it_appears(clip_dir: Path, tmp_path: Path,
                                                 inputs) -> None:
    target = tmp_path / "late.mp4"
    src = RecordingSource()
    start(inputs, src, str(target), allowed_file_roots=[tmp_path], backoff_s=0.1,
          backoff_max_s=0.3)
    assert wait_for(lambda: src.info["reconnects"] >= 2)
    assert src.state == "connecting" and src.error == "no such file"
    shutil.copy(clip_dir / "clip.mp4", target)
    assert wait_for(lambda: src.state == "live")
    assert src.error is None
    assert src.transitions[0] == ("connecting", "no such file")


def _serve_ts(payloads: list[bytes]) -> tuple[int, threading.Thread, list[float]]:
    """A TCP server that sends payload i to its i-th client, then closes that connection."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    accepted: list[float] = []

    def run() -> None:
        with srv:
            srv.settimeout(8)
            for data in payloads:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                accepted.append(time.monotonic())
                with conn:
                    try:
                        conn.sendall(data)
                    except OSError:
                        pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return port, t, accepted


def test_live_stream_drop_goes_connecting_then_recovers(clip_dir: Path, inputs) -> None:
    # Second connection brings different audio (44.1 kHz mono): still 48 kHz stereo in the ring.
    port, _server, accepted = _serve_ts([(clip_dir / "clip.ts").read_bytes(),
                                         (clip_dir / "mono44k.ts").read_bytes()])
    src = RecordingSource()
    start(inputs, src, f"tcp://127.0.0.1:{port}", backoff_s=0.2)
    assert wait_for(lambda: src.frames_received > 0)
    assert src.info["realtime"] is False  # live protocol: pushed as it arrives
    assert src.info["format"] == "mpegts"
    # The server closes after one pass: stream ended → connecting → reconnect → live again.
    assert wait_for(lambda: ("connecting", "stream ended") in src.transitions)
    # first pass is over: all audio from here on comes from the second (mono) connection
    audio_before = src.audio.pushed_samples
    assert wait_for(lambda: len(accepted) == 2)
    assert wait_for(lambda: src.frames_received > SECONDS * FPS)
    assert wait_for(lambda: src.audio.pushed_samples > audio_before + 48000)
    assert all(state != "error" for state, _ in src.transitions)
    assert (src.latest_video().frame.width, src.latest_video().frame.height) == (W, H)


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:1", "rtmp://127.0.0.1:1/live/x"])
def test_refused_url_retries_with_backoff_and_stops_promptly(url: str, inputs) -> None:
    src = RecordingSource()
    p = start(inputs, src, url, backoff_s=0.05, backoff_max_s=0.2)
    assert wait_for(lambda: src.info["reconnects"] >= 4)
    assert src.state == "connecting" and src.error == "connection refused"
    assert src.info["retry_in_s"] == 0.2  # 0.05, 0.1, 0.2, 0.2 ...
    t = time.monotonic()
    p.stop_sync()
    assert time.monotonic() - t < 2
    assert not p.running
    n = len(src.transitions)
    assert wait_for(lambda: len(src.transitions) > n, timeout=0.3) is False


async def test_stop_interrupts_a_silent_server(inputs) -> None:
    """A server that accepts and never sends: open blocks in probing until the open timeout;
    stop() returns within its join timeout and the worker exits by the open timeout."""
    srv = socket.create_server(("127.0.0.1", 0))
    accepted = threading.Event()
    conns: list[socket.socket] = []

    def accept() -> None:
        try:
            conns.append(srv.accept()[0])
            accepted.set()
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    src = RecordingSource()
    try:
        p = start(inputs, src, f"tcp://127.0.0.1:{srv.getsockname()[1]}",
                  open_timeout_s=1.0, read_timeout_s=1.0)
        assert accepted.wait(3)
        t = time.monotonic()
        await p.stop()
        assert time.monotonic() - t < 2.1
        assert wait_for(lambda: not p.running, timeout=1.5)
        assert src.transitions == []  # nothing written after stop
    finally:
        srv.close()
        for c in conns:
            c.close()


def test_garbage_file_is_an_error_state(tmp_path: Path, inputs) -> None:
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(np.random.default_rng(7).bytes(64_000))
    src = RecordingSource()
    p = start(inputs, src, str(bad), allowed_file_roots=[tmp_path], backoff_s=0.1)
    assert wait_for(lambda: src.state == "error")
    assert src.error == "invalid data"
    assert p.running  # keeps retrying (slowly) in case the file is replaced


def test_concat_script_is_refused_by_format_whitelist(clip_dir: Path, tmp_path: Path,
                                                       inputs) -> None:
    script = tmp_path / "list.mp4"
    script.write_text(f"ffconcat version 1.0\nfile {clip_dir / 'clip.mp4'}\n")
    src = RecordingSource()
    start(inputs, src, str(script), allowed_file_roots=[tmp_path], backoff_s=0.1)
    assert wait_for(lambda: src.state == "error")
    assert src.frames_received == 0
