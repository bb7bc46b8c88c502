"""Debian's Chromium plays our LL-HLS output: hls.js (from npm, served by us) and native HLS.

A real aiohttp server (HLS routes + /static/vendor/hls.min.js + a tiny page) and a real
Packager (libx264 + AAC, small ladder so two cores keep up with Chromium decoding) fed
synthetic program frames in real time from a thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from hls_packager.config import HlsConfig, RenditionConfig
from hls_packager.server import HlsRegistry, Packager, register_hls_routes
from hls_packager.testing import RealtimeFeeder
from tests.utils import wait_for
from web_console.assets import VendorAssets, register_vendor_routes

FPS = 30
PLAY_S = 20.0
LADDER = (
    RenditionConfig("360p", 640, 360, 600_000, audio_bitrate=96_000),
    RenditionConfig("180p", 320, 180, 250_000, audio_bitrate=64_000),
)

PAGE = """<!doctype html><meta charset="utf-8"><title>hls test</title>
<video id="v" muted autoplay playsinline width="640" height="360"></video>
<script src="/static/vendor/hls.min.js"></script>
<script>
window.errors = [];
function startHlsJs(url) {
  const v = document.getElementById('v');
  const hls = new Hls({lowLatencyMode: true, enableWorker: true, backBufferLength: 10});
  window.hls = hls;
  hls.on(Hls.Events.ERROR, (_, d) => window.errors.push(
      {fatal: d.fatal, type: d.type, details: d.details,
       code: d.response ? d.response.code : null, url: d.frag ? d.frag.url : d.url || null}));
  hls.loadSource(url);
  hls.attachMedia(v);
  hls.on(Hls.Events.MANIFEST_PARSED, () => v.play().catch(e => window.errors.push(
      {fatal: false, type: 'play', details: String(e)})));
  return Hls.version;
}
function startNative(url) {
  const v = document.getElementById('v');
  v.onerror = () => window.errors.push({fatal: true, type: 'media',
                                        details: v.error && v.error.message});
  v.src = url;
  v.play().catch(e => window.errors.push({fatal: false, type: 'play', details: String(e)}));
}
function sample() {
  const v = document.getElementById('v');
  const h = window.hls;
  return {t: v.currentTime, readyState: v.readyState, paused: v.paused,
          wall: Date.now() / 1000,
          latency: h ? h.latency : null, target: h ? h.targetLatency : null,
          playingDate: h && h.playingDate ? h.playingDate.getTime() / 1000 : null,
          level: h ? h.currentLevel : null,
          dropped: v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().droppedVideoFrames
                                             : null};
}
</script>"""


@dataclass
class Live:
    url: str
    packager: Packager


@pytest.fixture
async def live(aiohttp_server: Any, tmp_path: Any) -> AsyncIterator[Live]:
    assets = VendorAssets()
    if assets.read("hls.min.js") is None:
        pytest.fail("node_modules/hls.js is missing: run `make setup` (npm ci)")

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    registry = HlsRegistry(tmp_path)
    app = web.Application()
    register_hls_routes(app, registry)
    register_vendor_routes(app, assets)
    app.router.add_get("/", index)
    srv = await aiohttp_server(app)
    config = HlsConfig(renditions=LADDER, preset="ultrafast")
    packager = registry.create("e2e", FPS, config)
    packager.start()
    feeder = RealtimeFeeder(packager.push, FPS, 640, 360).start()
    out = packager.outputs["180p"]
    await wait_for(lambda: out.window.last_complete_msn is not None
                   and out.window.last_complete_msn >= 3, 30, "4 segments of history")
    try:
        yield Live(str(srv.make_url("")).rstrip("/"), packager)
    finally:
        feeder.stop()
        await packager.aclose()


async def _play(page: Any, seconds: float) -> list[dict[str, Any]]:
    samples = []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        samples.append(await page.evaluate("sample()"))
        await asyncio.sleep(0.5)
    return samples


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


@pytest.mark.slow
async def test_hlsjs_low_latency_plays_20s(live: Live, browser: Any,
                                           record_property: Any) -> None:
    page = await browser.new_page()
    await page.goto(live.url + "/")
    version = await page.evaluate("u => startHlsJs(u)", live.url + "/hls/e2e/index.m3u8")
    await wait_for(lambda: page.evaluate("document.getElementById('v').currentTime > 0.5"),
                   20, "hls.js playback to start")
    samples = await _play(page, PLAY_S)
    errors = await page.evaluate("window.errors")
    fatal = [e for e in errors if e["fatal"]]
    assert not fatal, fatal
    advanced = samples[-1]["t"] - samples[0]["t"]
    span = samples[-1]["wall"] - samples[0]["wall"]
    assert advanced > 0.5 * span, (advanced, span, samples[-3:])  # plays, no long stalls
    latencies = [s["latency"] for s in samples if s["latency"]]
    # glass-to-glass on loopback: wall clock now - program date time of the frame on screen
    # (PDT is the output clock's wall-clock mark of a segment's first frame)
    g2g = [s["wall"] - s["playingDate"] for s in samples if s["playingDate"]]
    figures = {
        "hlsjs": version, "played_s": round(advanced, 2), "wall_s": round(span, 2),
        "latency_p50_s": round(_pct(latencies, 0.5), 3),
        "latency_max_s": round(max(latencies), 3),
        "target_latency_s": samples[-1]["target"],
        "glass_to_glass_p50_s": round(_pct(g2g, 0.5), 3) if g2g else None,
        "glass_to_glass_p95_s": round(_pct(g2g, 0.95), 3) if g2g else None,
        "non_fatal_errors": [e["details"] for e in errors],
        "dropped_video_frames": samples[-1]["dropped"],
        "encoder_dropped": {n: r["dropped"] for n, r in
                            live.packager.stats()["renditions"].items()},
    }
    for k, v in figures.items():
        record_property(k, v)
    print("\nhls.js low-latency figures:", figures)
    # Functional, not a speed target (figures are benchmarks' business): hls.js stays at the
    # live edge instead of drifting into the past.
    assert figures["latency_p50_s"] < 10.0
    await page.close()


@pytest.mark.slow
async def test_chromium_native_hls_plays(live: Live, browser: Any) -> None:
    page = await browser.new_page()
    await page.goto(live.url + "/")
    support = await page.evaluate(
        "document.createElement('video').canPlayType('application/vnd.apple.mpegurl')")
    if not support:
        pytest.skip("this Chromium build has no native HLS player "
                    "(canPlayType('application/vnd.apple.mpegurl') == '')")
    await page.evaluate("u => startNative(u)", live.url + "/hls/e2e/index.m3u8")
    await wait_for(lambda: page.evaluate("document.getElementById('v').currentTime > 0.5"),
                   30, "native HLS playback to start")
    samples = await _play(page, 8)
    advanced = samples[-1]["t"] - samples[0]["t"]
    span = samples[-1]["wall"] - samples[0]["wall"]
    errors = await page.evaluate("window.errors")
    assert not [e for e in errors if e["fatal"]], errors
    assert advanced > 0.5 * span, (advanced, span, samples[-3:])  # plays, no long stalls
    print(f"\nnative HLS ({support!r}): played {advanced:.2f} s in {span:.2f} s")
    await page.close()
