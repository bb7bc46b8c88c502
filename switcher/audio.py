"""Audio mixer: per-source gain/mute/audio-follow-video, master gain, limiter, meters.

Pure numpy on blocks of 48 kHz stereo float32, one block per output frame (the engine passes
exactly `samples_for_frame(index)` samples of every source). Gains never jump: each channel's
effective gain ramps linearly across the block from the previous block's value, so cuts, mutes
and AFV crossfades are click-free while the level is exact from the next block on.

Routing per source (an "on air" weight comes from the video state, 0..1, and moves with the
transition position, so AFV crossfades last exactly as long as the video transition):
- muted: silent.
- afv on (default): heard with weight = on-air weight (1 on program, 0 off).
- afv off: always heard (like vMix "audio on" / ATEM "ON").
Then master gain and fade-to-black (the program audio fades with FTB), then the limiter.

Limiter: instant attack (no look-ahead, so the gain drops on the very sample that would clip),
exponential release (default 150 ms), ceiling -0.3 dBFS; output never exceeds +-1.0.
Meters: per source after its gain (not after mute/AFV, so operators see a muted or off-air
source is alive) and for the program after the limiter; peak and RMS in dBFS, floored at -100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

METER_FLOOR_DB = -100.0
MAX_GAIN_DB = 20.0
MIN_GAIN_DB = -100.0


def db_to_gain(db: float) -> float:
    return 0.0 if db <= MIN_GAIN_DB else 10.0 ** (db / 20.0)


def to_dbfs(x: float) -> float:
    return METER_FLOOR_DB if x <= 10 ** (METER_FLOOR_DB / 20) else round(20 * math.log10(x), 2)


@dataclass
class Meter:
    """Accumulates peak and sum of squares; `read()` returns dBFS and resets."""

    peak: float = 0.0
    sumsq: float = 0.0
    n: int = 0

    def add(self, block: np.ndarray) -> None:
        if block.size:
            self.peak = max(self.peak, float(np.max(np.abs(block))))
            self.sumsq += float(np.dot(block.ravel(), block.ravel()))
            self.n += block.size

    def read(self) -> dict[str, float]:
        rms = math.sqrt(self.sumsq / self.n) if self.n else 0.0
        out = {"peak_db": to_dbfs(self.peak), "rms_db": to_dbfs(rms)}
        self.peak, self.sumsq, self.n = 0.0, 0.0, 0
        return out


class Limiter:
    """Clip-free peak limiter: instant attack, exponential release, no look-ahead.

    With d = 1 - gain, the gain reduction needed at each sample is d_req = 1 - ceiling/|x|;
    the applied reduction is d[n] = max(d_req[n], d[n-1] * r) (release factor r per sample),
    computed for a whole block at once as a running maximum of d_req[k] * r^-k."""

    def __init__(self, rate: int = 48000, ceiling_db: float = -0.3,
                 release_ms: float = 150.0) -> None:
        self.ceiling = 10 ** (ceiling_db / 20)
        self.r = math.exp(-1.0 / (rate * release_ms / 1000.0))
        self.log_r = math.log(self.r)
        self.d = 0.0  # gain reduction carried between blocks (0 = unity)
        self.active_blocks = 0

    @property
    def gain_reduction_db(self) -> float:
        return round(20 * math.log10(max(1e-6, 1.0 - self.d)), 2)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Limit a (n, ch) float32 block in place and return it."""
        n = x.shape[0]
        if n == 0:
            return x
        peak = np.max(np.abs(x), axis=1)
        if self.d < 1e-6 and float(peak.max()) <= self.ceiling:
            self.d = 0.0
            return x
        self.active_blocks += 1
        with np.errstate(divide="ignore"):
            d_req = np.maximum(0.0, 1.0 - self.ceiling / np.maximum(peak, 1e-12))
        k = np.arange(n, dtype=np.float64)
        # d[k] = r^k * max(d0, max_{j<=k} d_req[j] * r^-j); scale carried in log form.
        decay = np.exp(k * self.log_r)
        scaled = d_req / decay
        run = np.maximum.accumulate(np.maximum(scaled, self.d))
        d = np.minimum(1.0, run * decay)
        self.d = float(d[-1]) * self.r
        x *= (1.0 - d).astype(np.float32)[:, None]
        np.clip(x, -1.0, 1.0, out=x)  # float rounding guard; the gain already ensures it
        return x


@dataclass
class Strip:
    """One source's channel strip settings."""

    gain_db: float = 0.0
    mute: bool = False
    afv: bool = True

    def to_dict(self) -> dict[str, object]:
        return {"gain_db": self.gain_db, "mute": self.mute, "afv": self.afv}


@dataclass
class _Live:
    gain: float = 0.0  # effective gain applied at the end of the last block
    meter: Meter = field(default_factory=Meter)


class AudioMixer:
    """Mixes one block per output frame. Settings live in the state machine; the mixer keeps
    only the ramp state (last effective gains), the limiter and the meters."""

    def __init__(self, rate: int = 48000, channels: int = 2) -> None:
        self.rate, self.channels = rate, channels
        self.limiter = Limiter(rate)
        self._live: dict[str, _Live] = {}
        self._master_gain = 1.0
        self.program_meter = Meter()

    def mix(self, blocks: dict[str, np.ndarray], strips: dict[str, Strip],
            on_air: dict[str, float], master_gain_db: float, master_mute: bool,
            ftb_level: float, n: int) -> np.ndarray:
        """Mix `n` samples. `blocks` holds each present source's (n, 2) float32 samples,
        `strips` their settings (missing = defaults), `on_air` each source's AFV weight 0..1,
        `ftb_level` 0 (clear) .. 1 (black, silent)."""
        out = np.zeros((n, self.channels), np.float32)
        ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)[:, None] + 1.0 / n
        default = Strip()
        for sid, block in blocks.items():
            st = strips.get(sid, default)
            live = self._live.get(sid)
            if live is None:
                live = self._live[sid] = _Live()
            g = db_to_gain(st.gain_db)
            live.meter.add(block * g if g != 1.0 else block)
            if st.mute:
                target = 0.0
            elif st.afv:
                target = g * float(on_air.get(sid, 0.0))
            else:
                target = g
            prev = live.gain
            live.gain = target
            if prev == 0.0 and target == 0.0:
                continue
            if prev == target:
                out += block * np.float32(target)
            else:
                out += block * (prev + (target - prev) * ramp)
        for sid in list(self._live):
            if sid not in blocks:
                del self._live[sid]
        master = 0.0 if master_mute else db_to_gain(master_gain_db) * (1.0 - ftb_level)
        prev = self._master_gain
        self._master_gain = master
        if prev != master:
            out *= prev + (master - prev) * ramp
        elif master != 1.0:
            out *= np.float32(master)
        self.limiter.process(out)
        self.program_meter.add(out)
        return out

    def read_meters(self) -> dict[str, object]:
        """Meters since the last read (peak/RMS dBFS), per source and for the program."""
        return {"sources": {sid: live.meter.read() for sid, live in self._live.items()},
                "program": self.program_meter.read(),
                "limiter_db": self.limiter.gain_reduction_db}
