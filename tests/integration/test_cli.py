"""The newcomer path: `scenecloud demo` starts, prints what is needed, stops cleanly."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from benchmarks.common import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
async def test_demo_runs_and_shuts_down_cleanly(tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "media_server.cli", "demo", "--port", str(port), "--data-dir",
        str(tmp_path / "data"), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    out = ""
    try:
        async with asyncio.timeout(60):
            while "Press Ctrl+C" not in out:
                line = await proc.stdout.readline()
                if not line:
                    raise AssertionError(f"demo exited: {(await proc.stderr.read()).decode()}")
                out += line.decode()
        base = f"http://127.0.0.1:{port}"
        for what in ("/console/demo", "/scene/demo", "/go/demo#token=", "/hls/demo/index.m3u8"):
            assert base + what in out, what
        director = re.search(r"director token:\s+(\S+)", out)
        assert director is not None
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/api/productions/demo", headers={
                    "Authorization": f"Bearer {director.group(1)}"}) as r:
                state = await r.json()
        assert state["program"] == {"source": "bars"} and state["preview"] == {"source": "solid"}
        assert {s["id"] for s in state["sources"]} == {"bars", "solid"}
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0
    assert (tmp_path / "data" / "admin_token").stat().st_mode & 0o777 == 0o600
