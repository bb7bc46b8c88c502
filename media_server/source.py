"""A Source owns one live input of a production.

It holds the newest decoded video frame (readers always take "newest"; a slow reader simply
skips frames) and a bounded 48 kHz stereo audio ring, plus the stats the API reports. The
writer is the input's decode side (aiortc's decoder via our receive task, a pull worker thread,
a test generator thread); the reader is the switcher tick or a snapshot request. Both sides
take a short lock; neither ever waits for the other.

Every video frame carries both clocks: its media time (``frame.pts``/``frame.time_base``) and
wall-clock marks (``captured`` when the sender says, ``arrived``, ``decoded``), so per-stage
latency can be measured downstream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import av
import numpy as np

log = logging.getLogger(__name__)

SourceKind = Literal["whip", "pull", "test"]
SourceState = Literal["connecting", "live", "stalled", "ended", "error"]

AUDIO_RATE = 48000
AUDIO_CHANNELS = 2


@dataclass(frozen=True, slots=True)
class VideoItem:
    """One decoded video frame with its clocks."""

    frame: av.VideoFrame
    seq: int  # per-source frame counter, starts at 1
    arrived: float  # wall clock (time.time()) when the decoded frame reached the source
    decoded: float  # wall clock when decoding finished (== arrived when not known apart)
    captured: float | None = None  # sender's capture wall clock, when it tells us


class AudioRing:
    """Bounded ring of 48 kHz stereo float32 samples.

    `push` appends (dropping the oldest samples past capacity, counted); `read(n)` returns exactly
    n samples, padding with silence when fewer are buffered (counted as underrun).

    Latency control: whatever backlog a ring picks up (a burst when a session starts, a reader
    that started late) would delay this source's audio for good. Over each window of reads the
    ring notes the smallest backlog left after a read; when even that stayed above `slack`
    samples, the excess was never needed to ride out jitter, so the oldest samples are trimmed
    (counted in `trimmed_samples`) and the audio comes back in step with its video."""

    TRIM_WINDOW_READS = 60  # ~2 s of 30 fps ticks
    TRIM_SLACK = 960  # 20 ms kept for jitter

    def __init__(self, capacity_samples: int) -> None:
        self._buf = np.zeros((capacity_samples, AUDIO_CHANNELS), dtype=np.float32)
        self._cap = capacity_samples
        self._start = 0  # index of oldest sample
        self._len = 0
        self._lock = threading.Lock()
        self.dropped_samples = 0
        self.underrun_samples = 0
        self.pushed_samples = 0
        self.trimmed_samples = 0
        self._reads = 0
        self._min_after = 1 << 30

    @property
    def buffered(self) -> int:
        return self._len

    def push(self, samples: np.ndarray) -> None:
        if samples.ndim != 2 or samples.shape[1] != AUDIO_CHANNELS:
            raise ValueError(f"expected (n, {AUDIO_CHANNELS}) samples, got {samples.shape}")
        n = samples.shape[0]
        if n == 0:
            return
        with self._lock:
            self.pushed_samples += n
            if n >= self._cap:
                self.dropped_samples += self._len + n - self._cap
                self._buf[:] = samples[-self._cap:]
                self._start, self._len = 0, self._cap
                return
            overflow = self._len + n - self._cap
            if overflow > 0:
                self._start = (self._start + overflow) % self._cap
                self._len -= overflow
                self.dropped_samples += overflow
            end = (self._start + self._len) % self._cap
            first = min(n, self._cap - end)
            self._buf[end:end + first] = samples[:first]
            if first < n:
                self._buf[:n - first] = samples[first:]
            self._len += n

    def read(self, n: int) -> np.ndarray:
        out = np.zeros((n, AUDIO_CHANNELS), dtype=np.float32)
        with self._lock:
            take = min(n, self._len)
            first = min(take, self._cap - self._start)
            out[:first] = self._buf[self._start:self._start + first]
            if first < take:
                out[first:take] = self._buf[:take - first]
            self._start = (self._start + take) % self._cap
            self._len -= take
            self.underrun_samples += n - take
            self._min_after = min(self._min_after, self._len)
            self._reads += 1
            if self._reads >= self.TRIM_WINDOW_READS:
                excess = self._min_after - self.TRIM_SLACK
                if excess > 0:
                    self._start = (self._start + excess) % self._cap
                    self._len -= excess
                    self.trimmed_samples += excess
                self._reads, self._min_after = 0, 1 << 30
        return out

    def clear(self) -> None:
        with self._lock:
            self._start = self._len = 0


class Source:
    """One input of a production. Thread-safe for one writer and many readers."""

    def __init__(self, production_id: str, source_id: str, kind: SourceKind, *,
                 audio_buffer_ms: int = 1000, stall_timeout_s: float = 3.0,
                 on_close: Callable[[], Any] | None = None) -> None:
        self.production_id = production_id
        self.id = source_id
        self.kind: SourceKind = kind
        self.created_at = time.time()
        self.stall_timeout_s = stall_timeout_s
        self.audio = AudioRing(AUDIO_RATE * audio_buffer_ms // 1000)
        self._lock = threading.Lock()
        self._latest: VideoItem | None = None
        # the last few frames, for a frame synchronizer that takes frames in order
        self._recent: deque[VideoItem] = deque(maxlen=8)
        self._state: SourceState = "connecting"
        self.error: str | None = None
        self.video_codec: str | None = None
        self.audio_codec: str | None = None
        self.frames_received = 0
        self.frames_dropped = 0
        self.audio_frames_received = 0
        self.bytes_received = 0  # compressed media bytes, where the input knows them
        self.network: dict[str, float | int | None] = {}
        self.info: dict[str, Any] = {}  # kind-specific details (url, pattern, ...)
        self._arrivals: deque[float] = deque(maxlen=240)
        self._bitrate_samples: deque[tuple[float, int]] = deque(maxlen=8)
        self._resampler: av.AudioResampler | None = None
        self._resampler_key: tuple[str, str, int] | None = None
        # kind-specific teardown (stop a pull/test thread, close a WHIP session), run once by
        # close(); the input owning the source sets it after creating both
        self.on_close = on_close
        self.ended_at: float | None = None
        self.last_media_at: float | None = None  # wall clock of the newest audio or video

    # --- writer side -------------------------------------------------------------------
    def push_video(self, frame: av.VideoFrame, *, arrived: float | None = None,
                   decoded: float | None = None, captured: float | None = None) -> VideoItem:
        now = time.time()
        with self._lock:
            self.frames_received += 1
            item = VideoItem(frame=frame, seq=self.frames_received,
                             arrived=arrived if arrived is not None else now,
                             decoded=decoded if decoded is not None else now,
                             captured=captured)
            self._latest = item
            self.last_media_at = now
            self._recent.append(item)
            self._arrivals.append(now)
            if self._state in ("connecting", "stalled"):
                self._state = "live"
        return item

    def count_dropped(self, n: int = 1) -> None:
        with self._lock:
            self.frames_dropped += n

    def push_audio(self, frame: av.AudioFrame) -> None:
        """Resample any audio frame to 48 kHz stereo float and append it to the ring.

        Mono is duplicated to both channels at full level (as OBS does), not panned -3 dB.
        A change of input format, layout or rate mid-stream rebuilds the resampler."""
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        mono = frame.layout.nb_channels == 1
        if self._resampler is None or self._resampler_key != key:
            self._resampler = av.AudioResampler(format="flt", layout="mono" if mono else "stereo",
                                                rate=AUDIO_RATE)
            self._resampler_key = key
        for out in self._resampler.resample(frame):
            arr = out.to_ndarray().reshape(-1, 1 if mono else AUDIO_CHANNELS)
            self.audio.push(np.repeat(arr, 2, axis=1) if mono else arr)
        self.audio_frames_received += 1
        self.last_media_at = time.time()

    def add_bytes(self, n: int) -> None:
        self.bytes_received += n

    def set_state(self, state: SourceState, error: str | None = None) -> None:
        with self._lock:
            if self._state == "ended":
                return
            self._state = state
            if error is not None:
                self.error = error
            if state == "ended":
                self.ended_at = time.time()

    # --- reader side -------------------------------------------------------------------
    def latest_video(self) -> VideoItem | None:
        return self._latest

    def video_after(self, seq: int) -> list[VideoItem]:
        """Frames newer than `seq` that are still kept (at most the last 8), oldest first."""
        with self._lock:
            return [it for it in self._recent if it.seq > seq]

    @property
    def state(self) -> SourceState:
        return self._state

    def check_stall(self, now: float | None = None) -> SourceState:
        """Move live → stalled when no frame came for stall_timeout_s. Returns the state."""
        now = time.time() if now is None else now
        with self._lock:
            last = self._arrivals[-1] if self._arrivals else None
            if (self._state == "live" and last is not None
                    and now - last > self.stall_timeout_s):
                self._state = "stalled"
            return self._state

    def measured_fps(self, now: float | None = None, window: float = 2.0) -> float:
        now = time.time() if now is None else now
        with self._lock:
            recent = [t for t in self._arrivals if now - t <= window]
        if len(recent) < 2:
            return 0.0
        span = recent[-1] - recent[0]
        return round((len(recent) - 1) / span, 2) if span > 0 else 0.0

    def sample_bitrate(self, now: float | None = None) -> float:
        """Record a (time, bytes) sample; return kbit/s over the samples kept."""
        now = time.time() if now is None else now
        self._bitrate_samples.append((now, self.bytes_received))
        return self.bitrate_kbps()

    def bitrate_kbps(self) -> float:
        if len(self._bitrate_samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._bitrate_samples[0], self._bitrate_samples[-1]
        return round((b1 - b0) * 8 / 1000 / (t1 - t0), 1) if t1 > t0 else 0.0

    def stats(self) -> dict[str, Any]:
        latest = self._latest
        w = latest.frame.width if latest else None
        h = latest.frame.height if latest else None
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.check_stall(),
            "error": self.error,
            "video_codec": self.video_codec,
            "audio_codec": self.audio_codec,
            "width": w,
            "height": h,
            "fps": self.measured_fps(),
            "frames_received": self.frames_received,
            "frames_dropped": self.frames_dropped,
            "audio_frames_received": self.audio_frames_received,
            "audio_dropped_samples": self.audio.dropped_samples,
            "audio_trimmed_samples": self.audio.trimmed_samples,
            "bitrate_kbps": self.bitrate_kbps(),
            "last_frame_age_s": round(time.time() - latest.arrived, 3) if latest else None,
            # sender capture → our arrival of the newest frame (sender's clock, from RTCP SR)
            "capture_to_arrival_ms": round((latest.arrived - latest.captured) * 1000, 1)
            if latest and latest.captured is not None else None,
            "created_at": self.created_at,
            "network": dict(self.network),
            **({"info": dict(self.info)} if self.info else {}),
        }

    async def close(self) -> None:
        """End the input (kind-specific teardown via on_close)."""
        self.set_state("ended")
        if self.on_close is not None:
            cb, self.on_close = self.on_close, None
            res = cb()
            if hasattr(res, "__await__"):
                await res


def frame_time(frame: av.VideoFrame | av.AudioFrame) -> float | None:
    """Media time of a frame in seconds, or None when it carries no pts."""
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * Fraction(frame.time_base))
