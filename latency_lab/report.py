"""Figures from probe samples, as a dict (JSON), a text table and a PNG plot (Pillow).

- glass-to-glass: decoded wall − capture (stamp), per live frame (the first time each stamp is
  seen; frames decoded while joining are left out); p50/p95/max. Also part arrival (bytes in −
  capture) and decode (decoded − bytes in).
- time to first frame: WHIP POST → first decoded stamped frame.
- A/V offset: each beep onset in media time against the output media time where the video
  shows the same capture instant (from the frames around it); + = audio late.
- frames lost (gaps in the stamp sequence at the publisher's fps) and frozen (a stamp repeated
  in the next output frame), counted between the first and the last stamp seen.
- stage spread: p95 / p50 of each of the server's stages (the issue's target: ≤ 2), from its
  latency document.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .watcher import FrameSample


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    def r(x: float | None) -> float | None:
        return None if x is None else round(float(x), 1)

    return {"p50": r(percentile(values, 0.5)), "p95": r(percentile(values, 0.95)),
            "max": r(max(values) if values else None), "min": r(min(values) if values else None),
            "count": len(values)}


@dataclass
class Run:
    """What a probe run saw."""

    samples: list[FrameSample]
    onsets: list[float]  # beep onsets, output media seconds
    fps: int  # the publisher's
    posted_wall: float | None = None  # just before the WHIP POST
    connected_wall: float | None = None  # WHIP session up
    publisher: dict[str, Any] = field(default_factory=dict)  # its "done" line
    meta: dict[str, Any] = field(default_factory=dict)  # url, production, rendition, …
    server_latency: Any = None  # GET /api/productions/{id}/latency, when the server has it


def live_frames(samples: Sequence[FrameSample]) -> list[FrameSample]:
    """Stamped frames, first sighting of each stamp, not while joining, up to the last new
    stamp (the output freezes on the last frame when the publisher stops)."""
    seen: set[int] = set()
    out = []
    for s in samples:
        if s.capture_ms is None or s.joined or s.capture_ms in seen:
            continue
        seen.add(s.capture_ms)
        out.append(s)
    return out


def continuity(samples: Sequence[FrameSample], fps: int) -> dict[str, int]:
    """Lost and frozen frames, in output order, between the first stamp and the last new one."""
    stamped = [s for s in samples if s.capture_ms is not None and not s.joined]
    if not stamped:
        return {"lost": 0, "frozen": 0, "unreadable": 0, "output_frames": 0}
    last_new = max(range(len(stamped)), key=lambda i: (stamped[i].capture_ms, -i))
    stamped = stamped[:last_new + 1]
    first_dec, last_dec = stamped[0].decoded, stamped[-1].decoded
    unreadable = sum(1 for s in samples if s.capture_ms is None and not s.joined
                     and first_dec <= s.decoded <= last_dec)
    period = 1000.0 / fps
    lost = frozen = 0
    for a, b in itertools.pairwise(stamped):
        d = b.capture_ms - a.capture_ms
        if d == 0:
            frozen += 1
        elif d > 1.5 * period:
            lost += round(d / period) - 1
    return {"lost": lost, "frozen": frozen, "unreadable": unreadable,
            "output_frames": len(stamped) + unreadable}


def av_offsets(samples: Sequence[FrameSample], onsets: Sequence[float],
               window_s: float = 1.0) -> list[float]:
    """Per beep: audio onset − video time of the same capture instant (ms, + = audio late)."""
    live = [s for s in live_frames(samples) if not math.isnan(s.pts)]
    out = []
    for ta in onsets:
        near = [s.capture_ms - s.pts * 1000 for s in live if abs(s.pts - ta) <= window_s]
        if len(near) < 5:
            continue
        offset = percentile(near, 0.5)  # capture ms = output media ms + offset, locally
        c = ta * 1000 + offset  # capture time the audio onset is shown with
        k = round(c / 1000) * 1000  # the beep was captured at a whole second
        if abs(c - k) < 400:
            out.append(c - k)
    return out


def ours(run: Run) -> list[FrameSample]:
    """The samples, with stamps captured before this run's WHIP POST (an earlier probe's
    frames still in the output) treated as unreadable."""
    if run.posted_wall is None:
        return list(run.samples)
    since = run.posted_wall * 1000
    return [s if s.capture_ms is None or s.capture_ms >= since
            else dataclasses.replace(s, capture_ms=None) for s in run.samples]


def summarize(run: Run) -> dict[str, Any]:
    run = dataclasses.replace(run, samples=ours(run))
    live = live_frames(run.samples)
    g2g = [s.decoded * 1000 - s.capture_ms for s in live]
    arrival = [s.received * 1000 - s.capture_ms for s in live]
    decode = [(s.decoded - s.received) * 1000 for s in live]
    first = next((s for s in run.samples if s.capture_ms is not None), None)
    ttff = (first.decoded - run.posted_wall) * 1000 if first and run.posted_wall else None
    connect = ((run.connected_wall - run.posted_wall) * 1000
               if run.connected_wall and run.posted_wall else None)
    avo = av_offsets(run.samples, run.onsets)
    cont = continuity(run.samples, run.fps)
    return {
        **run.meta,
        "frames_decoded": len(run.samples),
        "frames_stamped": sum(1 for s in run.samples if s.capture_ms is not None),
        "glass_to_glass_ms": _stats(g2g),
        "part_arrival_ms": _stats(arrival),
        "decode_ms": _stats(decode),
        "time_to_first_frame_ms": None if ttff is None else round(ttff, 1),
        "whip_connect_ms": None if connect is None else round(connect, 1),
        "av_offset_ms": _stats(avo),
        "beeps_heard": len(run.onsets),
        "frames_lost": cont["lost"],
        "frames_frozen": cont["frozen"],
        "frames_unreadable": cont["unreadable"],
        "publisher": run.publisher,
        "server_latency": run.server_latency,
        "stage_check": stage_check(run.server_latency, run.meta.get("rendition"), g2g, decode),
        "stage_spread": stage_spread(run.server_latency),
    }


def stage_check(server: Any, rendition: str | None, g2g: Sequence[float],
                decode: Sequence[float]) -> dict[str, Any] | None:
    """Do the server's own stages (capture → available, from its marks) plus the player's
    decoding add up to the glass-to-glass time this probe measured? Means, in ms."""
    try:
        total = server["renditions"][rendition]["total"]["mean_ms"]
    except (KeyError, TypeError):
        return None
    if total is None or not g2g:
        return None
    measured = sum(g2g) / len(g2g)
    stages = total + (sum(decode) / len(decode) if decode else 0.0)
    return {"server_stages_plus_decode_ms": round(stages, 1), "measured_ms": round(measured, 1),
            "difference_pct": round(100 * (stages - measured) / measured, 1)}


SPREAD_LIMIT = 2.0  # the target: no stage's p95 more than twice its p50
# the server's pipeline stages in order (media_server.metrics.STAGE_NAMES); "total" and
# "part_complete" are sums over stages: reported, not checked
PIPELINE_STAGES = ("ingest", "switcher_wait", "composite", "encode", "packaging", "delivery")
SUMS = ("total", "part_complete")


def stage_spread(server: Any, limit: float = SPREAD_LIMIT) -> dict[str, Any] | None:
    """p95 / p50 of every stage of the server's latency document
    (`{"renditions": {name: {stage: {"p50_ms", "p95_ms", ...}}}}`), and which stages are over
    `limit`. A stage whose p50 is missing or 0 has no ratio (`ratio` None, `over` None) and is
    listed under "undefined", never as over or within. Sums (total, part_complete) get a ratio
    but are not checked (`checked` False). `met`: at least one stage has a ratio and none is
    over."""
    try:
        renditions = server["renditions"]
        items = renditions.items()
    except (KeyError, TypeError, AttributeError):
        return None
    order = {name: i for i, name in enumerate((*PIPELINE_STAGES, *SUMS))}
    rows: list[dict[str, Any]] = []
    for rendition, stages in sorted(items):
        if not isinstance(stages, dict):
            continue
        for stage in sorted(stages, key=lambda k: (order.get(k, len(order)), k)):
            st = stages[stage] if isinstance(stages[stage], dict) else {}
            p50, p95 = st.get("p50_ms"), st.get("p95_ms")
            ratio = (round(p95 / p50, 2) if isinstance(p50, int | float) and p50 > 0
                     and isinstance(p95, int | float) else None)
            rows.append({"rendition": rendition, "stage": stage, "p50_ms": p50, "p95_ms": p95,
                         "count": st.get("count"), "ratio": ratio,
                         "over": None if ratio is None else ratio > limit,
                         "checked": stage not in SUMS})
    checked = [r for r in rows if r["checked"]]
    return {"limit": limit, "rows": rows,
            "over": [f"{r['rendition']}/{r['stage']}" for r in checked if r["over"]],
            "undefined": [f"{r['rendition']}/{r['stage']}" for r in checked
                          if r["ratio"] is None],
            "met": any(r["ratio"] is not None for r in checked)
            and not any(r["over"] for r in checked)}


def spread_lines(spread: dict[str, Any] | None, rendition: str | None = None) -> list[str]:
    """Table lines of `stage_spread` (one rendition when given and present, else all)."""
    if not spread or not spread["rows"]:
        return []
    rows = spread["rows"]
    if rendition and any(r["rendition"] == rendition for r in rows):
        rows = [r for r in rows if r["rendition"] == rendition]
    lim = spread["limit"]
    lines = [f"{'stage spread (p95 / p50)':28}{'p50':>10}{'p95':>10}{'ratio':>8}  "
             f"limit {lim:g}x"]
    for r in rows:
        name = f"{r['rendition']}/{r['stage']}"
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}"
        verdict = ("sum, not checked" if not r["checked"] else
                   "no p50" if r["ratio"] is None else "OVER" if r["over"] else "ok")
        p50, p95 = (("–" if v is None else f"{v:.1f}") for v in (r["p50_ms"], r["p95_ms"]))
        lines.append(f"{name[:28]:28}{p50:>10}{p95:>10}{ratio:>8}  {verdict}")
    over = ", ".join(spread["over"]) or "none"
    lines.append(f"stages over {lim:g}x (all renditions): {over}")
    return lines


def _fmt(v: Any, unit: str = " ms") -> str:
    return "–" if v is None else f"{v:.0f}{unit}" if isinstance(v, float) else f"{v}{unit}"


def server_stage_rows(data: Any) -> list[tuple[str, Any, Any]]:
    """(stage, p50, p95) rows from the server's latency document, whatever its nesting."""
    rows: list[tuple[str, Any, Any]] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            keys = {k.lower(): k for k in node}
            p50 = next((node[keys[k]] for k in ("p50", "p50_ms", "median_ms") if k in keys),
                       None)
            p95 = next((node[keys[k]] for k in ("p95", "p95_ms") if k in keys), None)
            if p50 is not None or p95 is not None:
                rows.append((prefix or "total", p50, p95))
                return
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                name = v.get("stage") or v.get("name") if isinstance(v, dict) else None
                walk(f"{prefix}.{name or i}" if prefix else str(name or i), v)

    walk("", data)
    return rows


def render_table(s: dict[str, Any]) -> str:
    g, a, d, av = (s["glass_to_glass_ms"], s["part_arrival_ms"], s["decode_ms"],
                   s["av_offset_ms"])
    lines = [
        f"scenecloud probe: {s.get('url', '')} production {s.get('production', '?')}, "
        f"rendition {s.get('rendition', '?')}, {s.get('size', '?')}@{s.get('fps', '?')}, "
        f"parts fetched {s.get('fetch', '?')}",
        "",
        f"{'':28}{'p50':>10}{'p95':>10}{'max':>10}{'n':>8}",
        f"{'glass-to-glass':28}{_fmt(g['p50']):>10}{_fmt(g['p95']):>10}{_fmt(g['max']):>10}"
        f"{g['count']:>8}",
        f"{'  capture → part bytes in':28}{_fmt(a['p50']):>10}{_fmt(a['p95']):>10}"
        f"{_fmt(a['max']):>10}{a['count']:>8}",
        f"{'  bytes in → decoded':28}{_fmt(d['p50']):>10}{_fmt(d['p95']):>10}"
        f"{_fmt(d['max']):>10}{d['count']:>8}",
        f"{'A/V offset (+ audio late)':28}{_fmt(av['p50']):>10}{_fmt(av['p95']):>10}"
        f"{_fmt(av['max']):>10}{av['count']:>8}",
        "",
        f"time to first frame   {_fmt(s['time_to_first_frame_ms'])} (WHIP POST → first "
        f"stamped frame decoded; WHIP connect {_fmt(s['whip_connect_ms'])})",
        f"frames                {s['frames_decoded']} decoded, {s['frames_stamped']} stamped, "
        f"{s['frames_lost']} lost, {s['frames_frozen']} frozen, "
        f"{s['frames_unreadable']} unreadable",
    ]
    pub = s.get("publisher") or {}
    if pub:
        lines.append(f"publisher             {pub.get('frames', '?')} frames sent, "
                     f"{pub.get('skipped', 0)} skipped (late), "
                     f"latest {pub.get('late_max_ms', '?')} ms behind schedule")
    b = s.get("browser")
    if b:
        bg = b["glass_to_glass_ms"]
        lines += ["", f"{'hls.js in Chromium':28}{_fmt(bg['p50']):>10}{_fmt(bg['p95']):>10}"
                      f"{_fmt(bg['max']):>10}{bg['count']:>8}",
                  f"  (glass-to-glass as the browser presents frames; hls.latency p50 "
                  f"{b['hls_latency_s']['p50']} s; {b['frames_unreadable']} unreadable; "
                  f"hls.js errors: {', '.join(b['hlsjs_errors']) or 'none'})"]
    rows = server_stage_rows(s.get("server_latency")) if s.get("server_latency") else []
    chk = s.get("stage_check")
    if chk:
        lines += ["", f"server stages + decode  {chk['server_stages_plus_decode_ms']} ms vs "
                      f"glass-to-glass {chk['measured_ms']} ms (means; "
                      f"{chk['difference_pct']:+} %)"]
    if rows:
        lines += ["", f"{'server stages':28}{'p50':>10}{'p95':>10}"]
        lines += [f"{name[:28]:28}{p50!s:>10}{p95!s:>10}" for name, p50, p95 in rows]
    elif s.get("server_latency") is None:
        lines += ["", "server stages: not available (no /api/productions/{id}/latency)"]
    spread = spread_lines(s.get("stage_spread"), s.get("rendition"))
    if spread:
        lines += ["", *spread]
    return "\n".join(lines)


# --------------------------------------------------------------------------- plot

W, H = 1000, 480
ML, MR, MT, MB = 70, 20, 40, 50
COLORS = {"g2g": (30, 90, 200), "arrival": (90, 170, 90), "lost": (220, 40, 40),
          "p50": (230, 120, 0), "grid": (225, 225, 225), "axis": (60, 60, 60)}


def _nice_step(span: float, target: int = 6) -> float:
    raw = span / max(1, target)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def plot_png(run: Run, summary: dict[str, Any], path: str) -> None:
    """Latency over time: glass-to-glass and part arrival per frame, p50 line, lost frames."""
    from PIL import Image, ImageDraw, ImageFont

    live = live_frames(ours(run))
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    title = (f"scenecloud probe - {summary.get('production', '')} "
             f"{summary.get('rendition', '')}: glass-to-glass p50 "
             f"{_fmt(summary['glass_to_glass_ms']['p50'])}, p95 "
             f"{_fmt(summary['glass_to_glass_ms']['p95'])}")
    d.text((ML, 12), title, fill=COLORS["axis"], font=font)
    pw, ph = W - ML - MR, H - MT - MB
    if not live:
        d.text((ML + 20, MT + ph // 2), "no stamped frames", fill=COLORS["lost"], font=font)
        img.save(path)
        return
    t0 = live[0].capture_ms
    xs = [(s.capture_ms - t0) / 1000 for s in live]
    g2g = [s.decoded * 1000 - s.capture_ms for s in live]
    arr = [s.received * 1000 - s.capture_ms for s in live]
    xmax = max(xs[-1], 1.0)
    ymax = max(100.0, max(g2g) * 1.3)  # headroom for the legend
    ymin = min(0.0, min(arr))

    def X(x: float) -> float:
        return ML + x / xmax * pw

    def Y(y: float) -> float:
        return MT + ph - (y - ymin) / (ymax - ymin) * ph

    step = _nice_step(ymax - ymin)
    y = math.ceil(ymin / step) * step
    while y <= ymax:
        d.line([(ML, Y(y)), (ML + pw, Y(y))], fill=COLORS["grid"])
        d.text((8, Y(y) - 6), f"{y:.0f} ms", fill=COLORS["axis"], font=font)
        y += step
    xstep = _nice_step(xmax, 10)
    x = 0.0
    while x <= xmax + 1e-9:
        d.line([(X(x), MT + ph), (X(x), MT + ph + 4)], fill=COLORS["axis"])
        d.text((X(x) - 6, MT + ph + 8), f"{x:g}", fill=COLORS["axis"], font=font)
        x += xstep
    d.text((ML + pw // 2 - 60, H - 18), "capture time (s)", fill=COLORS["axis"], font=font)
    d.rectangle([ML, MT, ML + pw, MT + ph], outline=COLORS["axis"])
    for series, color in ((arr, COLORS["arrival"]), (g2g, COLORS["g2g"])):
        pts = [(X(a), Y(b)) for a, b in zip(xs, series, strict=True)]
        if len(pts) > 1:
            d.line(pts, fill=color, width=1)
        for px, py in pts:
            d.ellipse([px - 1.5, py - 1.5, px + 1.5, py + 1.5], fill=color)
    p50 = summary["glass_to_glass_ms"]["p50"]
    if p50 is not None:
        d.line([(ML, Y(p50)), (ML + pw, Y(p50))], fill=COLORS["p50"], width=1)
    period = 1000.0 / run.fps
    for a, b in itertools.pairwise(live):
        if b.capture_ms - a.capture_ms > 1.5 * period:
            xl = X((a.capture_ms + period - t0) / 1000)
            d.line([(xl, MT + ph - 8), (xl, MT + ph)], fill=COLORS["lost"], width=2)
    lx = ML + pw - 250
    d.rectangle([lx - 6, MT + 4, ML + pw - 4, MT + 12 + 4 * 16], fill="white",
                outline=COLORS["grid"])
    for i, (name, color) in enumerate((("glass-to-glass (decoded - capture)", COLORS["g2g"]),
                                       ("part bytes in - capture", COLORS["arrival"]),
                                       ("glass-to-glass p50", COLORS["p50"]),
                                       ("lost frames", COLORS["lost"]))):
        d.rectangle([lx, MT + 10 + i * 16, lx + 10, MT + 18 + i * 16], fill=color)
        d.text((lx + 16, MT + 8 + i * 16), name, fill=COLORS["axis"], font=font)
    img.save(path)
