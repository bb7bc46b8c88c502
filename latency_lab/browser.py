"""A real player as a second watcher: hls.js (low-latency mode) in headless Chromium.

The page plays the production's multivariant playlist with hls.js served by the server itself
(`/static/vendor/hls.min.js`, no CDN). For every frame the browser presents
(`requestVideoFrameCallback`), a small grey copy of the picture and the wall clock of that moment
go back to Python, which reads the stamped capture clock out of it (`stamp.py`): glass-to-glass
as a viewer's browser shows it. Needs Debian's /usr/bin/chromium and the Python `playwright`
package (a test dependency); `--browser` says so clearly when either is missing.
"""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import stamp

W, H = 192, 108  # the grey copy sent back per frame: enough for the 8x6 cells of a quadrant

PAGE = """<!doctype html><meta charset="utf-8"><title>scenecloud probe: hls.js</title>
<video id="v" muted playsinline autoplay style="width:640px"></video>
<canvas id="c" width="%(w)d" height="%(h)d" hidden></canvas>
<script src="%(hlsjs)s"></script>
<script>
const v = document.getElementById('v'), c = document.getElementById('c');
const ctx = c.getContext('2d', {willReadFrequently: true});
const hls = new Hls({lowLatencyMode: true, backBufferLength: 10});
window.hlsErrors = [];
hls.on(Hls.Events.ERROR, (_, d) => {
  window.hlsErrors.push(d.details);
  if (d.fatal) (d.type === Hls.ErrorTypes.MEDIA_ERROR ? hls.recoverMediaError() : hls.startLoad());
});
hls.loadSource(%(src)s);
hls.attachMedia(v);
v.play().catch(() => {});
function onFrame(now, meta) {
  const shown = performance.timeOrigin + meta.expectedDisplayTime;
  ctx.drawImage(v, 0, 0, c.width, c.height);
  const px = ctx.getImageData(0, 0, c.width, c.height).data;
  const y = new Uint8Array(c.width * c.height);
  for (let i = 0, j = 0; j < y.length; i += 4, j++)
    y[j] = (66 * px[i] + 129 * px[i + 1] + 25 * px[i + 2] + 4224) >> 8;  // BT.601 luma
  let s = ''; for (let i = 0; i < y.length; i += 8192)
    s += String.fromCharCode.apply(null, y.subarray(i, i + 8192));
  window.report(btoa(s), shown, hls.latency || null);
  v.requestVideoFrameCallback(onFrame);
}
v.requestVideoFrameCallback(onFrame);
</script>"""

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required"]


class BrowserUnavailable(Exception):
    pass


@dataclass
class BrowserWatcher:
    base: str
    production: str
    region: stamp.Region | None = None
    samples: list[tuple[int, float]] = field(default_factory=list)  # (capture ms, shown ms)
    hls_latency: list[float] = field(default_factory=list)
    frames: int = 0
    unreadable: int = 0
    errors: list[str] = field(default_factory=list)
    _pw: Any = None
    _browser: Any = None
    _page: Any = None

    async def start(self) -> None:
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        try:
            from playwright.async_api import async_playwright
        except ImportError:
            raise BrowserUnavailable("--browser needs the Python package playwright "
                                     "(make test installs it)") from None
        if not shutil.which(chromium):
            raise BrowserUnavailable("--browser needs Chromium at /usr/bin/chromium "
                                     "(apt-get install chromium)")
        self._pw = await async_playwright().start()
        self._browser = await self._pw.chromium.launch(executable_path=chromium, headless=True,
                                                       args=ARGS)
        self._page = await self._browser.new_page()
        await self._page.expose_function("report", self._report)
        html = PAGE % {"w": W, "h": H, "hlsjs": f"{self.base}/static/vendor/hls.min.js",
                       "src": repr(f"{self.base}/hls/{self.production}/index.m3u8")}
        await self._page.goto(f"{self.base}/healthz")  # same origin as the stream
        await self._page.set_content(html)

    def _report(self, b64: str, shown_ms: float, latency: float | None) -> None:
        self.frames += 1
        y = np.frombuffer(base64.b64decode(b64), np.uint8).reshape(H, W)
        bits = stamp.threshold_cells(stamp.cell_means(y, self.region))
        ts = stamp.decode_bits(bits) if bits is not None else None
        if ts is None:
            self.unreadable += 1
            return
        self.samples.append((stamp.unwrap_ms(ts, shown_ms), shown_ms))
        if latency:
            self.hls_latency.append(float(latency))

    async def stop(self) -> None:
        if self._page is not None:
            try:
                self.errors = list(await self._page.evaluate("window.hlsErrors || []"))
            except Exception as exc:  # the page may already be gone
                self.errors.append(f"page: {exc}")
        if self._browser is not None:
            await self._browser.close()
        if self._pw is not None:
            await self._pw.stop()

    def summary(self, since_ms: float | None = None) -> dict[str, Any]:
        from .report import _stats

        rows = [(c, s) for c, s in self.samples if since_ms is None or c >= since_ms]
        return {"player": "hls.js (low-latency) in Chromium",
                "glass_to_glass_ms": _stats([s - c for c, s in rows]),
                "hls_latency_s": _stats(self.hls_latency),
                "frames_presented": self.frames, "frames_stamped": len(rows),
                "frames_unreadable": self.unreadable,
                "hlsjs_errors": sorted(set(self.errors))}
