"""The access log keeps API requests and leaves out the high-rate media requests."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from media_server.app import create_app
from media_server.cli import access_log_options
from tests.conftest import make_config


@pytest.mark.parametrize(("mode", "api", "media"), [("api", True, False), ("all", True, True),
                                                     ("off", False, False)])
async def test_access_log_modes(aiohttp_server: Any, tmp_path: Path,
                                caplog: pytest.LogCaptureFixture, mode: str, api: bool,
                                media: bool) -> None:
    app = create_app(make_config(), data_dir=tmp_path)
    srv = await aiohttp_server(app, **access_log_options(mode))
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        async with aiohttp.ClientSession() as http:
            for path in ("/healthz", "/hls/nope/index.m3u8", "/static/vendor/hls.min.js"):
                async with http.get(str(srv.make_url(path))) as r:
                    await r.read()
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "aiohttp.access")
    assert ("GET /healthz" in logged) is api
    assert ("GET /hls/nope/index.m3u8" in logged) is media
    assert ("GET /static/vendor/hls.min.js" in logged) is media
