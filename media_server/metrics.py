"""Per-stage latency from the wall-clock marks every frame carries (pure), and the Prometheus
text exposition of the server's figures.

A program frame's marks, in pipeline order: `captured` (sender's clock, from RTCP SR or the
test generator), `arrived`/`decoded` (our source got it decoded), `tick` (the switcher's clock
took it), `composited`, `encoded` (per rendition), `chunked` (its CMAF chunk of the preload-
hinted part went out to waiting clients) and `published` (the whole part became listed), and,
per HTTP response, `delivered`. "Available" is the first moment a player can have the frame:
`chunked` when chunks are streamed, else `published`. Stages are differences of consecutive
marks, so they add up to the total (captured → available) exactly; `part_complete` (captured →
published) is what a player that waits for listed parts sees. `delivery` is the server's own
HTTP time per part response: from when it could answer (the part's publication, or the request
when that came later, a player catching up) to the response being written.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# (stage name, from mark, to mark)
STAGES: tuple[tuple[str, str, str], ...] = (
    ("ingest", "captured", "arrived"),  # network + jitter buffer + decode (sender clock)
    ("switcher_wait", "arrived", "tick"),  # newest frame waiting for the output clock
    ("composite", "tick", "composited"),
    ("encode", "composited", "encoded"),  # encoder queue + x264/AAC
    ("packaging", "encoded", "available"),  # waiting for its chunk (or part) to be cut
)
STAGE_NAMES = (*(s[0] for s in STAGES), "delivery")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
           1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


@dataclass
class Histogram:
    """Cumulative Prometheus-style buckets plus a bounded reservoir of recent values for
    quantiles."""

    buckets: tuple[float, ...] = BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=4096))

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.total += value
        self.count += 1
        self.recent.append(value)

    def quantile(self, q: float) -> float | None:
        if not self.recent:
            return None
        vals = sorted(self.recent)
        return vals[min(len(vals) - 1, max(0, math.ceil(q * len(vals)) - 1))]

    def cumulative(self) -> list[int]:
        out, acc = [], 0
        for c in self.counts:
            acc += c
            out.append(acc)
        return out

    def summary(self) -> dict[str, float | int | None]:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000, 1)

        return {"count": self.count, "p50_ms": ms(self.quantile(0.5)),
                "p95_ms": ms(self.quantile(0.95)), "max_ms": ms(max(self.recent, default=None)),
                "mean_ms": ms(self.total / self.count) if self.count else None}


class StageLatency:
    """Latency histograms of one production, per rendition and stage."""

    def __init__(self) -> None:
        self.hist: dict[tuple[str, str], Histogram] = {}

    def _h(self, rendition: str, stage: str) -> Histogram:
        key = (rendition, stage)
        h = self.hist.get(key)
        if h is None:
            h = self.hist[key] = Histogram()
        return h

    def observe_frames(self, rendition: str, frames: Iterable[Mapping[str, float]]) -> None:
        """Marks of the frames of one published part."""
        for marks in frames:
            m = dict(marks)
            available = m.get("chunked", m.get("published"))
            if available is not None:
                m["available"] = available
            for name, a, b in STAGES:
                if a in m and b in m:
                    self._h(rendition, name).observe(max(0.0, m[b] - m[a]))
            start = m.get("captured", m.get("arrived"))
            if start is not None and available is not None:
                self._h(rendition, "total").observe(max(0.0, available - start))
            if start is not None and "published" in m:
                self._h(rendition, "part_complete").observe(max(0.0, m["published"] - start))

    def observe_delivery(self, rendition: str, seconds: float) -> None:
        self._h(rendition, "delivery").observe(max(0.0, seconds))

    def report(self) -> dict[str, dict[str, dict[str, float | int | None]]]:
        out: dict[str, dict[str, dict[str, float | int | None]]] = {}
        for (rendition, stage), h in sorted(self.hist.items()):
            out.setdefault(rendition, {})[stage] = h.summary()
        return out


def _labels(labels: Mapping[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{esc(str(v))}"' for k, v in labels.items()) + "}"


class Exposition:
    """Builds Prometheus text format (version 0.0.4)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._declared: set[str] = set()

    def declare(self, name: str, kind: str, help_: str) -> None:
        if name not in self._declared:
            self._declared.add(name)
            self.lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, labels: Mapping[str, str], value: float) -> None:
        v = "NaN" if value is None else repr(float(value))
        self.lines.append(f"{name}{_labels(labels)} {v}")

    def histogram(self, name: str, labels: Mapping[str, str], h: Histogram) -> None:
        for le, c in zip(h.buckets, h.cumulative(), strict=True):
            self.sample(f"{name}_bucket", {**labels, "le": repr(le)}, c)
        self.sample(f"{name}_bucket", {**labels, "le": "+Inf"}, h.count)
        self.sample(f"{name}_sum", labels, h.total)
        self.sample(f"{name}_count", labels, h.count)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
