"""Shared fixtures: a real server on a real TCP port, with its own data dir."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from media_server.app import create_app
from media_server.config import Config, load_config

ADMIN = "test-admin-token-0123456789"


def make_config(**ingest: Any) -> Config:
    cfg = load_config(None, environ={})
    cfg = cfg.replace("server", admin_token=ADMIN)
    return cfg.replace("ingest", **{"ice_host_addresses": ("127.0.0.1",), **ingest})


@dataclasses.dataclass
class Server:
    url: str
    app: Any
    http: aiohttp.ClientSession

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN}"}

    async def create_production(self, pid: str = "quake", **extra: Any) -> dict[str, Any]:
        body = {"id": pid, "title": "甘孜 6.8 级地震", **extra}
        async with self.http.post(f"{self.url}/api/productions", json=body,
                                  headers=self.admin()) as r:
            assert r.status == 201, await r.text()
            return await r.json()

    async def production(self, pid: str, token: str) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/api/productions/{pid}",
                                 headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200, await r.text()
            return await r.json()


@pytest.fixture
def config() -> Config:
    return make_config()


@pytest.fixture
async def server(aiohttp_server: Any, tmp_path: Path, config: Config) -> AsyncIterator[Server]:
    app = create_app(config, data_dir=tmp_path / "data", file_roots=[str(tmp_path)])
    srv = await aiohttp_server(app)
    async with aiohttp.ClientSession() as http:
        yield Server(url=str(srv.make_url("")).rstrip("/"), app=app, http=http)
