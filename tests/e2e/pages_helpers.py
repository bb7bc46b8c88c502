"""Helpers shared by the page tests and benchmarks/bench_console.py: a server with the pages
registered, and in-page measurements (Cut → program monitor, Go Live → live on the server)."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
from aiohttp import web

from media_server.app import create_app
from media_server.config import Config

# solid test sources: (id, colour)
COLORS = {"red": "#c81e1e", "blue": "#1e3cc8", "green": "#1ea03c"}


def rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def pages_app(config: Config, **kw: Any) -> web.Application:
    """The server as users run it: `create_app` registers the pages and the npm assets."""
    return create_app(config, **kw)


class Client:
    """Tiny API client over aiohttp for the tests and the benchmark."""

    def __init__(self, url: str, admin: str, http: aiohttp.ClientSession) -> None:
        self.url, self.admin, self.http = url, admin, http

    async def call(self, method: str, path: str, token: str, body: Any = None,
                   status: int | None = None) -> Any:
        async with self.http.request(method, self.url + path, json=body,
                                     headers={"Authorization": f"Bearer {token}"}) as r:
            data = await r.read()
            if status is not None:
                assert r.status == status, (r.status, data[:300])
            ctype = r.headers.get("Content-Type", "")
            return data if not ctype.startswith("application/json") else (
                await r.json() if data else None)

    async def create(self, pid: str, title: str, width: int = 320, height: int = 180,
                     fps: int = 30) -> dict[str, Any]:
        return await self.call("POST", "/api/productions", self.admin,
                               {"id": pid, "title": title,
                                "video": {"width": width, "height": height, "fps": fps}}, 201)

    async def add_solid(self, pid: str, token: str, sid: str, color: str) -> None:
        await self.call("POST", f"/api/productions/{pid}/sources", token,
                        {"id": sid, "kind": "test", "pattern": "solid", "color": color}, 201)

    async def add_bars(self, pid: str, token: str, sid: str) -> None:
        await self.call("POST", f"/api/productions/{pid}/sources", token,
                        {"id": sid, "kind": "test", "pattern": "bars"}, 201)

    async def switch(self, pid: str, token: str, **body: Any) -> dict[str, Any]:
        return await self.call("POST", f"/api/productions/{pid}/switcher", token, body, 200)

    async def production(self, pid: str, token: str) -> dict[str, Any]:
        return await self.call("GET", f"/api/productions/{pid}", token, status=200)

    async def jpeg(self, pid: str, token: str, bus: str = "program") -> Any:
        from PIL import Image

        data = await self.call("GET", f"/api/productions/{pid}/{bus}.jpg", token, status=200)
        return Image.open(io.BytesIO(data)).convert("RGB")


async def sign_in(page: Any, base: str, pid: str, token: str) -> None:
    await page.goto(f"{base}/console/{pid}")
    await page.fill("#token", token)
    await page.locator("#signin button[type=submit]").click()
    await page.wait_for_selector("#app:not([hidden])")
    await page.wait_for_selector("#conn[data-status=live]")


# In-page measurement of Cut → program monitor: t0 = the click on "Cut" (capture phase), t1 =
# the first program.jpg whose request started after the click and that shows the target colour
# (its centre pixel), once decoded into the monitor <img>.
ARM_CUT_JS = """([target, tol]) => {
  const S = window.sceneConsole;
  const mon = S.monitors.program;
  const canvas = document.createElement('canvas');
  canvas.width = 16; canvas.height = 9;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  window.__cut = null;
  let t0 = null, frames = 0;
  const onClick = (e) => {
    if (e.target.closest('#cut')) t0 = performance.now();
  };
  document.addEventListener('click', onClick, {capture: true, once: true});
  const onFrame = (ev) => {
    if (t0 === null || ev.detail.started < t0) return;
    frames += 1;
    ctx.drawImage(ev.detail.img, 0, 0, 16, 9);
    const d = ctx.getImageData(8, 5, 1, 1).data;
    const diff = Math.abs(d[0] - target[0]) + Math.abs(d[1] - target[1])
      + Math.abs(d[2] - target[2]);
    if (diff <= tol) {
      mon.removeEventListener('frame', onFrame);
      window.__cut = {ms: ev.detail.shown - t0, fetch_started_ms: ev.detail.started - t0,
                      frames_after_click: frames};
    }
  };
  mon.addEventListener('frame', onFrame);
}"""


async def measure_cut(page: Any, target: tuple[int, int, int], tol: int = 90) -> dict[str, Any]:
    await page.evaluate(ARM_CUT_JS, [list(target), tol])
    await page.get_by_role("button", name="Cut", exact=True).click()
    await page.wait_for_function(
        "() => window.__cut !== null", timeout=5000)
    return await page.evaluate("window.__cut")


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]
