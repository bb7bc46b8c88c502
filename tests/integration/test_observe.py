"""Per-stage latency and Prometheus metrics from a running production."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN, Server
from tests.utils import wait_for


@pytest.mark.slow
async def test_latency_and_metrics(server: Server) -> None:
    prod = await server.create_production(video={"width": 320, "height": 180, "fps": 30})
    d = {"Authorization": f"Bearer {prod['director_token']}"}
    base = f"{server.url}/api/productions/quake"
    async with server.http.post(f"{base}/sources", headers=d,
                                json={"id": "bars", "kind": "test"}) as r:
        assert r.status == 201
    await wait_for(lambda: _live(server, prod), 10, "bars live")
    async with server.http.post(f"{base}/switcher", headers=d,
                                json={"op": "program", "source": "bars"}) as r:
        assert r.status == 200

    async def stages() -> dict | None:
        async with server.http.get(f"{base}/latency", headers=d) as r:
            assert r.status == 200
            body = await r.json()
        rend = next(iter(body["renditions"].values()), {})
        return body if rend.get("ingest", {}).get("count", 0) > 30 else None

    await wait_for(stages, 15, "latency stages of frames on program")
    body = await stages()
    assert body is not None
    rend = next(iter(body["renditions"].values()))
    for stage in ("ingest", "switcher_wait", "composite", "encode", "packaging", "total"):
        assert rend[stage]["count"] > 0 and rend[stage]["p50_ms"] is not None, stage
    # the stages are consecutive differences of the same marks: their means add up to the
    # total's (within the rounding of the figures)
    parts = sum(rend[s]["mean_ms"] for s in ("ingest", "switcher_wait", "composite", "encode",
                                            "packaging"))
    assert abs(parts - rend["total"]["mean_ms"]) < 0.1 * rend["total"]["mean_ms"] + 1
    async with server.http.get(f"{server.url}/metrics") as r:
        assert r.status == 401
    async with server.http.get(f"{server.url}/metrics",
                               headers={"Authorization": f"Bearer {ADMIN}"}) as r:
        assert r.status == 200 and r.content_type == "text/plain"
        text = await r.text()
    assert 'scenecloud_stage_latency_seconds_bucket{production="quake"' in text
    assert 'scenecloud_source_frames_received_total{production="quake",source="bars"' in text
    assert "scenecloud_hls_viewers" in text and "scenecloud_switcher_late_ticks_total" in text
    async with server.http.get(f"{base}/latency",
                               headers={"Authorization": f"Bearer {prod['publish_token']}"}) as r:
        assert r.status == 403


async def _live(server: Server, prod: dict) -> bool:
    srcs = (await server.production("quake", prod["director_token"]))["sources"]
    return bool(srcs) and srcs[0]["frames_received"] > 5
