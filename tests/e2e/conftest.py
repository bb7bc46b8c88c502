"""Browser fixtures: Debian's Chromium (never a downloaded browser) driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

from latency_lab.browser import ARGS as BROWSER_ARGS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    # headless, offline and quiet, with autoplay: the probe's player uses the same ones
    *BROWSER_ARGS,
    # camera and microphone: Chromium's built-in fake devices, permission granted
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    # WebRTC on loopback: gather 127.0.0.1 and show raw addresses instead of mDNS names
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()
