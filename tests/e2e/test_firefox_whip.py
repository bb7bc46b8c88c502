"""Firefox publishes over WHIP on its defaults (VP8) and with H.264 preferred.

No driver is needed (and none is downloaded): Debian's firefox-esr opens a page that publishes by
itself and reports the outcome back to the page's server; the test watches our server's API."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import Server
from tests.utils import stop_process, wait_for

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")

PREFS = {
    # fake camera and microphone, no permission prompt
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    # WebRTC over loopback, raw host addresses instead of mDNS names
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    # a quiet, offline browser
    "browser.shell.checkDefaultBrowser": False,
    "app.update.auto": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "network.captive-portal-service.enabled": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "extensions.update.enabled": False,
    "network.connectivity-service.enabled": False,
    "media.autoplay.default": 0,
}

PAGE = """<!doctype html><meta charset="utf-8"><title>firefox whip</title><script>
const q = new URLSearchParams(location.hash.slice(1));
async function report(obj) {
  await fetch('/report', {method: 'POST', body: JSON.stringify(obj)});
}
(async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
    const pc = new RTCPeerConnection();
    for (const t of stream.getTracks()) pc.addTransceiver(t, {direction: 'sendonly'});
    const codec = q.get('codec');
    const have = RTCRtpSender.getCapabilities('video').codecs.map(c => c.mimeType);
    if (codec && !have.includes('video/' + codec)) return report({missing: codec, have});
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
    const resp = await fetch(q.get('url'), {method: 'POST', body: pc.localDescription.sdp,
        headers: {'Content-Type': 'application/sdp', 'Authorization': 'Bearer ' + q.get('token')}});
    const answer = await resp.text();
    if (resp.status === 201) await pc.setRemoteDescription({type: 'answer', sdp: answer});
    window.pc = pc;
    const s = stream.getVideoTracks()[0].getSettings();
    await report({status: resp.status, location: resp.headers.get('Location'),
                  width: s.width, height: s.height, ua: navigator.userAgent,
                  body: resp.status === 201 ? '' : answer});
  } catch (e) {
    await report({error: String(e)});
  }
})();
</script>"""


@pytest.fixture
async def page(aiohttp_server: Any) -> Any:
    reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def report(request: web.Request) -> web.Response:
        await reports.put(json.loads(await request.text()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_post("/report", report)
    srv = await aiohttp_server(app)
    return str(srv.make_url("/")), reports


@pytest.mark.slow
@pytest.mark.skipif(FIREFOX is None, reason="firefox-esr is not installed (make test installs it)")
@pytest.mark.parametrize("codec", [None, "H264"], ids=["default-VP8", "H264"])
async def test_firefox_publishes(server: Server, page: Any, tmp_path: Path,
                                 codec: str | None) -> None:
    origin, reports = page
    prod = await server.create_production()
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "user.js").write_text("".join(
        f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items()))
    frag = f"url={server.url}/whip/quake/fox&token={prod['publish_token']}"
    if codec:
        frag += f"&codec={codec}"
    assert FIREFOX is not None
    proc = await asyncio.create_subprocess_exec(
        FIREFOX, "--headless", "--no-remote", "--profile", str(profile), f"{origin}#{frag}",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "MOZ_HEADLESS": "1"})
    try:
        res = await asyncio.wait_for(reports.get(), 60)
        if "missing" in res:
            pytest.skip(f"this Firefox has no {res['missing']} encoder ({res['have']}): Firefox "
                        "gets H.264 from the OpenH264 plugin it downloads on first use, and this "
                        "machine has no network beyond package registries")
        assert "error" not in res, res
        assert res["status"] == 201, res
        assert res["location"].startswith("/whip/quake/fox/")

        async def live() -> bool:
            srcs = (await server.production("quake", prod["director_token"]))["sources"]
            s = next((s for s in srcs if s["id"] == "fox"), None)
            return bool(s and s["frames_received"] >= 10 and s["audio_frames_received"] > 0)

        await wait_for(live, 30, "frames from Firefox")
        s = next(s for s in (await server.production("quake", prod["director_token"]))["sources"]
                 if s["id"] == "fox")
        assert s["video_codec"] == (codec or "VP8")
        assert (s["width"], s["height"]) == (res["width"], res["height"])
    finally:
        await stop_process(proc)
