"""Observability endpoints: `GET /api/productions/{id}/latency` (director) and `GET /metrics`
(Prometheus text format; admin token unless `server.metrics_public`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .metrics import Exposition
from .productions import ProductionRuntime
from .web import CONFIG, RUNTIMES, WHIP, json_response, require_admin, require_director, runtime_for


def latency_dict(rt: ProductionRuntime) -> dict[str, Any]:
    sw = rt.switcher.stats()
    return {
        "production": rt.id,
        "marks": ["captured", "arrived", "tick", "composited", "encoded", "published",
                  "delivered"],
        # per rendition: stage -> {count, p50_ms, p95_ms, max_ms, mean_ms}; "total" is
        # captured (or arrived, when the sender gives no capture time) -> part published
        "renditions": rt.latency.report(),
        "sources": {sid: {"capture_to_arrival_ms": s.stats()["capture_to_arrival_ms"],
                          "state": s.state}
                    for sid, s in rt.sources.items()},
        "switcher": {k: sw.get(k) for k in ("ticks", "late_ticks", "skipped_frames",
                                            "composite_ms_p50", "composite_ms_p95",
                                            "tick_ms_p50", "tick_ms_p95") if k in sw},
    }


async def latency(request: web.Request) -> web.Response:
    rt = runtime_for(request)
    require_director(request, rt)
    return json_response(latency_dict(rt))


def exposition(runtimes: dict[str, ProductionRuntime], whip_sessions: int) -> str:
    e = Exposition()
    e.declare("scenecloud_productions", "gauge", "Productions running on this node.")
    e.sample("scenecloud_productions", {}, len(runtimes))
    e.declare("scenecloud_whip_sessions", "gauge", "Open WHIP sessions.")
    e.sample("scenecloud_whip_sessions", {}, whip_sessions)
    for pid, rt in sorted(runtimes.items()):
        states: dict[str, int] = {}
        for sid, src in rt.sources.items():
            states[src.state] = states.get(src.state, 0) + 1
            lab = {"production": pid, "source": sid, "kind": src.kind}
            e.declare("scenecloud_source_frames_received_total", "counter",
                      "Video frames decoded per source.")
            e.sample("scenecloud_source_frames_received_total", lab, src.frames_received)
            e.declare("scenecloud_source_frames_dropped_total", "counter",
                      "Video frames dropped per source (queue full).")
            e.sample("scenecloud_source_frames_dropped_total", lab, src.frames_dropped)
            e.declare("scenecloud_source_audio_dropped_samples_total", "counter",
                      "Audio samples dropped per source (ring full).")
            e.sample("scenecloud_source_audio_dropped_samples_total", lab,
                     src.audio.dropped_samples)
        e.declare("scenecloud_sources", "gauge", "Sources per state.")
        for state, n in sorted(states.items()):
            e.sample("scenecloud_sources", {"production": pid, "state": state}, n)
        sw = rt.switcher.stats()
        e.declare("scenecloud_switcher_ticks_total", "counter", "Output clock ticks.")
        e.sample("scenecloud_switcher_ticks_total", {"production": pid}, sw.get("ticks", 0))
        e.declare("scenecloud_switcher_late_ticks_total", "counter",
                  "Ticks that started after their deadline.")
        e.sample("scenecloud_switcher_late_ticks_total", {"production": pid},
                 sw.get("late_ticks", 0))
        e.declare("scenecloud_switcher_skipped_frames_total", "counter",
                  "Output frames skipped because the clock fell behind.")
        e.sample("scenecloud_switcher_skipped_frames_total", {"production": pid},
                 sw.get("skipped_frames", 0))
        if rt.packager is not None:
            e.declare("scenecloud_hls_viewers", "gauge",
                      "Distinct clients that loaded a media playlist in the last 10 s.")
            for name, out in rt.packager.outputs.items():
                e.sample("scenecloud_hls_viewers", {"production": pid, "rendition": name},
                         out.viewers())
        e.declare("scenecloud_stage_latency_seconds", "histogram",
                  "Per-stage latency of program frames, from their wall-clock marks.")
        for (rendition, stage), h in sorted(rt.latency.hist.items()):
            e.histogram("scenecloud_stage_latency_seconds",
                        {"production": pid, "rendition": rendition, "stage": stage}, h)
    return e.text()


async def metrics(request: web.Request) -> web.Response:
    if not request.app[CONFIG].server.metrics_public:
        require_admin(request)
    text = exposition(request.app[RUNTIMES], len(request.app[WHIP].sessions))
    return web.Response(text=text, content_type="text/plain",
                        headers={"Cache-Control": "no-store"}, charset="utf-8")


def register_observe_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/productions/{production}/latency", latency)
