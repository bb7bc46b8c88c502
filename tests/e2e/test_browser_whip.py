"""Chromium publishes over WHIP with its default codec (VP8) and with H.264 preferred.

The page is served from another origin than the WHIP endpoint, so CORS is exercised too."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tests.conftest import Server
from tests.utils import wait_for

PAGE = """<!doctype html><meta charset="utf-8"><title>whip test</title>
<script>
async function publish(url, token, codec) {
  const stream = await navigator.mediaDevices.getUserMedia(
      {video: {width: 640, height: 360}, audio: true});
  const pc = new RTCPeerConnection();
  for (const t of stream.getTracks()) pc.addTransceiver(t, {direction: 'sendonly'});
  if (codec) {
    const tr = pc.getTransceivers().find(t => t.sender.track.kind === 'video');
    tr.setCodecPreferences(RTCRtpSender.getCapabilities('video').codecs
        .filter(c => c.mimeType === 'video/' + codec));
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => {
    if (pc.iceGatheringState === 'complete') return r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r();
    setTimeout(r, 3000);
  });
  const resp = await fetch(url, {method: 'POST', body: pc.localDescription.sdp,
      headers: {'Content-Type': 'application/sdp', 'Authorization': 'Bearer ' + token}});
  const answer = await resp.text();
  if (resp.status !== 201) return {status: resp.status, body: answer};
  await pc.setRemoteDescription({type: 'answer', sdp: answer});
  window.pc = pc;
  const s = stream.getVideoTracks()[0].getSettings();
  return {status: resp.status, location: resp.headers.get('Location'),
          width: s.width, height: s.height};
}
</script>"""


@pytest.fixture
async def page_origin(aiohttp_server: Any) -> str:
    async def index(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    srv = await aiohttp_server(app)
    return str(srv.make_url("/"))


@pytest.mark.slow
@pytest.mark.parametrize("codec", [None, "H264"], ids=["default-VP8", "H264"])
async def test_chromium_publishes(server: Server, browser: Any, page_origin: str,
                                  codec: str | None) -> None:
    prod = await server.create_production()
    page = await browser.new_page()
    await page.goto(page_origin)
    res = await page.evaluate("([u, t, c]) => publish(u, t, c)",
                              [f"{server.url}/whip/quake/chrome", prod["publish_token"], codec])
    assert res["status"] == 201, res
    assert res["location"].startswith("/whip/quake/chrome/")  # CORS exposed the header

    async def live() -> bool:
        srcs = (await server.production("quake", prod["director_token"]))["sources"]
        s = next((s for s in srcs if s["id"] == "chrome"), None)
        return bool(s and s["frames_received"] >= 10 and s["audio_frames_received"] > 0)

    await wait_for(live, 30, "frames from Chromium")
    s = next(s for s in (await server.production("quake", prod["director_token"]))["sources"]
             if s["id"] == "chrome")
    assert s["video_codec"] == (codec or "VP8")
    assert (s["width"], s["height"]) == (res["width"], res["height"])
    assert s["state"] == "live"
    await page.close()
