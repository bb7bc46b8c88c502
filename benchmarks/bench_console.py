"""Pages figures and README screenshots, in Debian's Chromium on loopback.

    .venv/bin/python -m benchmarks.bench_console [--cuts 30] [--golive 3] [--no-screenshots]

- Console: click on "Cut" → the program monitor shows the new source. Measured in the page with
  performance.now(): from the click event to the first program.jpg whose request started after
  the click and whose centre pixel has the new source's colour, decoded into the <img>.
- Publisher page: click on "Go Live" → the source is "live" in the API (polled every 10 ms),
  and → the page's RTCPeerConnection reports "connected".
- Screenshots of the three pages with real content (test sources on program, a Chinese lower
  third, a phone source ON AIR) into docs/screenshots/{console,scene,go}.png.

The server runs in this process (`create_app` + `register_pages`), production 640x360 at 30 fps.
Writes benchmarks/results/console.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.common import free_port
from media_server.config import load_config
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.pages_helpers import (
    COLORS,
    Client,
    measure_cut,
    pages_app,
    pct,
    rgb,
    sign_in,
)
from tests.utils import wait_for

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHOTS = ROOT / "docs" / "screenshots"
ADMIN = "bench-admin-token-0123456789"
PID = "quake"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    cfg = load_config(None, environ={})
    cfg = cfg.replace("server", admin_token=ADMIN)
    cfg = cfg.replace("ingest", ice_host_addresses=("127.0.0.1",))
    tmp = Path(tempfile.mkdtemp(prefix="bench-console-"))
    app = pages_app(cfg, data_dir=tmp / "data")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {"machine": {"cpus": __import__("os").cpu_count(),
                                       "python": platform.python_version()},
                           "production": "640x360 @ 30 fps"}
    try:
        async with aiohttp.ClientSession() as http, async_playwright() as pw:
            api = Client(url, ADMIN, http)
            prod = await api.create(PID, "甘孜 6.8 级地震 · 直播", 640, 360, 30)
            director, publish = prod["director_token"], prod["publish_token"]
            await api.add_bars(PID, director, "bars")
            for sid in ("red", "blue"):
                await api.add_solid(PID, director, sid, COLORS[sid])

            async def all_live() -> bool:
                p = await api.production(PID, director)
                return sum(s["state"] == "live" for s in p["sources"]) >= 3

            await wait_for(all_live, 20, "test sources live")
            await api.switch(PID, director, op="program", source="red")
            await api.switch(PID, director, op="preview", source="blue")
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                               args=CHROMIUM_ARGS)
            out["chromium"] = browser.version

            # --- Cut → program monitor
            ctx = await browser.new_context(viewport={"width": 1440, "height": 1000})
            page = await ctx.new_page()
            await sign_in(page, url, PID, director)
            await asyncio.sleep(1.0)
            samples, fetch_after = [], []
            for i in range(args.cuts):
                target = COLORS["blue"] if i % 2 == 0 else COLORS["red"]
                r = await measure_cut(page, rgb(target))
                samples.append(r["ms"])
                fetch_after.append(r["fetch_started_ms"])
                await asyncio.sleep(0.3)
            out["cut_to_program_monitor_ms"] = {
                "n": len(samples), "p50": round(pct(samples, 0.5), 1),
                "p95": round(pct(samples, 0.95), 1), "max": round(max(samples), 1),
                "min": round(min(samples), 1),
                "fetch_start_after_click_p50": round(pct(fetch_after, 0.5), 1),
                "target_ms": 200}
            await ctx.close()

            # --- Go Live → live on the server
            golive, connected = [], []
            for i in range(args.golive):
                gctx = await browser.new_context(viewport={"width": 390, "height": 844})
                gp = await gctx.new_page()
                await gp.goto(f"{url}/go/{PID}#token={publish}")
                await gp.locator("#q360").click()
                sid = f"phone-bench{i}"
                await gp.fill("#source", sid)
                await gp.get_by_role("button", name="Allow camera").click()
                await gp.wait_for_function("() => document.getElementById('local').videoWidth > 0")
                t0 = time.monotonic()
                await gp.get_by_role("button", name="Go Live").click()

                async def live(sid: str = sid) -> bool:
                    p = await api.production(PID, director)
                    return any(s["id"] == sid and s["state"] == "live" for s in p["sources"])

                await wait_for(live, 20, f"{sid} live", interval=0.01)
                golive.append((time.monotonic() - t0) * 1000)
                await gp.wait_for_function("() => window.scenePublisher.connectedAt !== null")
                connected.append(await gp.evaluate(
                    "window.scenePublisher.connectedAt - window.scenePublisher.clickedAt"))
                await gp.get_by_role("button", name="Stop").click()
                await gctx.close()
            out["go_live_to_source_live_ms"] = {
                "n": len(golive), "p50": round(pct(golive, 0.5)), "max": round(max(golive)),
                "page_connected_p50": round(pct(connected, 0.5))}

            if args.screenshots:
                await screenshots(browser, api, url)
            await browser.close()
    finally:
        await runner.cleanup()
    return out


async def screenshots(browser: Any, api: Client, url: str) -> None:
    """A fresh production "live": bars, red, blue and a phone in a PiP on program, overlays."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    pid = "live"
    prod = await api.create(pid, "甘孜 6.8 级地震 · 直播", 640, 360, 30)
    director, publish = prod["director_token"], prod["publish_token"]
    await api.add_bars(pid, director, "bars")
    for sid in ("red", "blue"):
        await api.add_solid(pid, director, sid, COLORS[sid])
    # a phone goes live (English UI: the big ON AIR)
    gctx = await browser.new_context(viewport={"width": 390, "height": 760},
                                     device_scale_factor=2, is_mobile=True, has_touch=True)
    gp = await gctx.new_page()
    await gp.goto(f"{url}/go/{pid}#token={publish}")
    await gp.locator("#q360").click()
    await gp.fill("#source", "phone-liu")
    await gp.get_by_role("button", name="Go Live").click()
    await gp.wait_for_function("() => window.scenePublisher.state === 'connected'")

    async def phone_live() -> bool:
        p = await api.production(pid, director)
        return any(s["id"] == "phone-liu" and s["state"] == "live" for s in p["sources"])

    await wait_for(phone_live, 20, "phone live")
    sw = {"op": "layout", "name": "pip", "kind": "pip", "sources": ["bars", "phone-liu"]}
    await api.switch(pid, director, **sw)
    await api.switch(pid, director, op="program", layout="pip")
    await api.switch(pid, director, op="preview", source="blue")
    for body in (
        {"op": "overlay", "action": "define", "name": "lt1", "kind": "lower_third",
         "title": "刘洋 · 现场报道", "subtitle": "甘孜州泸定县 · 震中 12 公里"},
        {"op": "overlay", "action": "define", "name": "ticker", "kind": "ticker",
         "text": "突发：四川甘孜州泸定县发生 6.8 级地震，救援队伍正在赶赴现场 —— "
                 "Breaking: M6.8 earthquake in Luding, Sichuan"},
        {"op": "overlay", "action": "define", "name": "clock", "kind": "clock",
         "tz": "Asia/Shanghai", "corner": "top_right"},
    ):
        await api.switch(pid, director, **body)
    for name in ("lt1", "ticker", "clock"):
        await api.switch(pid, director, op="overlay", action="show", name=name)
    await gp.wait_for_function("() => window.scenePublisher.tally === 'program'")
    await asyncio.sleep(2.5)
    await gp.screenshot(path=str(SHOTS / "go.png"))

    ctx = await browser.new_context(viewport={"width": 1440, "height": 1100}, locale="zh-CN")
    page = await ctx.new_page()
    await sign_in(page, url, pid, director)
    await page.locator("summary", has_text="下三分之一字幕").click()
    await page.fill("#lt-form input[name=title]", "刘洋 · 现场报道")
    await page.fill("#lt-form input[name=subtitle]", "甘孜州泸定县 · 震中 12 公里")
    await page.fill("#pub-form input[name=token]", publish)
    await page.locator("#pub-form button[type=submit]").click()
    await page.wait_for_function(
        "() => [...document.querySelectorAll('.tile img')].every(i => i.naturalWidth > 0)")
    await asyncio.sleep(2.0)
    await page.screenshot(path=str(SHOTS / "console.png"), full_page=True)
    await ctx.close()

    sctx = await browser.new_context(viewport={"width": 390, "height": 760},
                                     device_scale_factor=2, is_mobile=True, has_touch=True,
                                     locale="zh-CN")
    sp = await sctx.new_page()
    await sp.goto(f"{url}/scene/{pid}?player=hlsjs")
    await sp.wait_for_function("() => document.getElementById('video').currentTime > 2",
                               timeout=40000)
    await asyncio.sleep(1.0)
    await sp.screenshot(path=str(SHOTS / "scene.png"))
    await sctx.close()
    await gp.get_by_role("button", name="Stop").click()
    await gctx.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cuts", type=int, default=30)
    ap.add_argument("--golive", type=int, default=3)
    ap.add_argument("--no-screenshots", dest="screenshots", action="store_false")
    args = ap.parse_args()
    out = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "console.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    c, g = out["cut_to_program_monitor_ms"], out["go_live_to_source_live_ms"]
    print("| figure | p50 | p95 / max | n |\n|---|---|---|---|")
    print(f"| click Cut → program monitor shows it | {c['p50']} ms | {c['p95']} / "
          f"{c['max']} ms | {c['n']} |")
    print(f"| click Go Live → source live on server | {g['p50']} ms | – / {g['max']} ms | "
          f"{g['n']} |")
    print(f"| click Go Live → page connected | {g['page_connected_p50']} ms | | {g['n']} |")


if __name__ == "__main__":
    main()
