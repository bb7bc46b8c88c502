"""`scenecloud probe --browser`: hls.js in Debian's Chromium as a second, real player."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Server
from tests.integration.test_probe import SMALL, probe


@pytest.mark.slow
async def test_probe_with_hlsjs_in_chromium(server: Server) -> None:
    prod = await server.create_production(video=SMALL)
    code, out, err, _took = await probe(
        server.url, "--production", prod["id"], "--size", "320x180", "--seconds", "10",
        "--browser", "--json", timeout=120,
        SCENECLOUD_PUBLISH_TOKEN=prod["publish_token"],
        SCENECLOUD_DIRECTOR_TOKEN=prod["director_token"])
    assert code == 0, err
    b = json.loads(out)["browser"]
    print("\nprobe --browser (hls.js in Chromium, 320x180):", json.dumps(b))
    # the browser presented frames and their stamps were read: a latency figure exists
    assert b["frames_stamped"] > 30, b
    g = b["glass_to_glass_ms"]
    assert g["count"] == b["frames_stamped"] and 0 < g["p50"] <= g["max"]
