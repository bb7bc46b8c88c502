"""`scenecloud probe` (latency_lab) against a real server: a real measurement and bad input.

The probe runs as its own process (`python -m latency_lab.probe`, what `scenecloud probe`
calls), as a user would run it; the server runs in the test's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from benchmarks.common import free_port
from latency_lab.probe import add_probe_parser
from tests.conftest import Server

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"width": 320, "height": 180, "fps": 30}


async def probe(*args: str, timeout: float = 60, **env: str) -> tuple[int, str, str, float]:
    """Run the probe CLI; (exit status, stdout, stderr, seconds taken)."""
    penv = {k: v for k, v in os.environ.items()
            if k not in ("SCENECLOUD_PUBLISH_TOKEN", "SCENECLOUD_DIRECTOR_TOKEN")}
    penv.update(env)
    penv["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), penv.get("PYTHONPATH")) if p)
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "latency_lab.probe", *args, env=penv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode(), err.decode(), time.monotonic() - t0


@pytest.mark.slow
async def test_probe_measures_glass_to_glass(server: Server, tmp_path: Path) -> None:
    prod = await server.create_production(video=SMALL)
    png = tmp_path / "latency.png"
    code, out, err, took = await probe(
        server.url, "--production", prod["id"], "--size", "320x180", "--seconds", "8",
        "--json", "--plot", str(png), timeout=90,
        SCENECLOUD_PUBLISH_TOKEN=prod["publish_token"],
        SCENECLOUD_DIRECTOR_TOKEN=prod["director_token"])
    assert code == 0, err
    for secret in (prod["publish_token"], prod["director_token"]):
        assert secret not in out and secret not in err
    s: dict[str, Any] = json.loads(out)
    print(f"\nprobe on loopback (320x180, 200 ms parts, took {took:.1f} s):",
          json.dumps({k: s[k] for k in ("glass_to_glass_ms", "part_arrival_ms",
                                        "time_to_first_frame_ms", "av_offset_ms",
                                        "frames_lost", "frames_frozen", "publisher")}))
    g = s["glass_to_glass_ms"]
    assert 0 < g["p50"] < 5000 and g["p50"] <= g["p95"] <= g["max"]
    assert s["frames_decoded"] > 50 and s["frames_stamped"] > 50
    assert s["rendition"] == "180p" and s["parts_fetched"] > 10
    assert 0 < s["time_to_first_frame_ms"] < 10_000
    assert s["beeps_heard"] >= 3 and s["av_offset_ms"]["count"] >= 3
    assert abs(s["av_offset_ms"]["p50"]) < 1000
    assert s["publisher"]["frames"] > 150
    assert Image.open(png).size[0] > 100
    # the server's stages and their spread (p95 / p50) for the rendition watched
    sp = s["stage_spread"]
    rows = {r["stage"]: r for r in sp["rows"] if r["rendition"] == "180p"}
    assert {"ingest", "switcher_wait", "encode", "packaging", "total"} <= set(rows)
    assert all(r["ratio"] is None or r["ratio"] >= 1 for r in rows.values())
    assert set(sp["over"]) <= {f"{r['rendition']}/{r['stage']}" for r in sp["rows"]}
    print("stage spread:", {k: r["ratio"] for k, r in rows.items()}, "over:", sp["over"])
    # the probe cut its source to program
    state = await server.production(prod["id"], prod["director_token"])
    assert state["program"] == {"source": "probe"}


@pytest.mark.slow
async def test_no_stamped_frames_when_source_not_on_program(server: Server) -> None:
    """No director token and nobody cuts: the output never shows the stamps."""
    prod = await server.create_production(video=SMALL)
    code, _out, err, took = await probe(
        server.url, "--production", prod["id"], "--size", "320x180", "--seconds", "30",
        "--first-frame-timeout", "3", SCENECLOUD_PUBLISH_TOKEN=prod["publish_token"])
    assert code == 1, err
    assert "no stamped frame in the HLS output" in err and "on program?" in err
    assert took < 15, took


async def test_unreachable_server() -> None:
    code, _out, err, took = await probe(f"http://127.0.0.1:{free_port()}", "--production", "x",
                                        "--publish-token", "t")
    assert code == 2 and "cannot reach http://127.0.0.1:" in err
    assert err.count("\n") == 1 and took < 5


async def test_wrong_publish_token(server: Server) -> None:
    prod = await server.create_production(video=SMALL)
    code, _out, err, took = await probe(server.url, "--production", prod["id"],
                                        "--size", "320x180",
                                        SCENECLOUD_PUBLISH_TOKEN="not-the-token")
    assert code == 2 and "WHIP publish refused: wrong publish token" in err, err
    assert "not-the-token" not in err and took < 10


async def test_wrong_director_token(server: Server) -> None:
    prod = await server.create_production(video=SMALL)
    code, _out, err, took = await probe(server.url, "--production", prod["id"],
                                        "--publish-token", prod["publish_token"],
                                        "--director-token", "nope-nope")
    assert code == 2 and "director token refused" in err and took < 5


async def test_unknown_production(server: Server) -> None:
    prod = await server.create_production(video=SMALL)
    code, _out, err, _ = await probe(server.url, "--production", "nosuch",
                                     "--publish-token", prod["publish_token"])
    assert code == 2 and "production 'nosuch' has no HLS output" in err, err
    code, _out, err, _ = await probe(server.url, "--production", "nosuch",
                                     "--publish-token", prod["publish_token"],
                                     "--director-token", prod["director_token"])
    assert code == 2 and "unknown production 'nosuch'" in err, err


async def test_not_a_scene_cloud_server(aiohttp_server: Any) -> None:
    from aiohttp import web

    srv = await aiohttp_server(web.Application())  # answers 404 to everything
    code, _out, err, _ = await probe(str(srv.make_url("")).rstrip("/"), "--production", "x",
                                     "--publish-token", "t")
    assert code == 2 and "does not answer like a Scene Cloud server" in err


async def test_bad_arguments() -> None:
    code, _out, err, _ = await probe("http://127.0.0.1:9", "--production", "x")
    assert code == 2 and "no publish token" in err
    code, _out, err, _ = await probe("http://127.0.0.1:9", "--production", "x",
                                     "--publish-token", "t", "--size", "big")
    assert code == 2 and "WIDTHxHEIGHT" in err


def test_hook_for_the_scenecloud_cli() -> None:
    p = argparse.ArgumentParser(prog="scenecloud")
    sub = p.add_subparsers(dest="cmd", required=True)
    add_probe_parser(sub)
    args = p.parse_args(["probe", "http://h:8080", "--production", "demo", "--size", "640x360",
                         "--region", "0.5,0,1,0.5", "--json"])
    assert args.cmd == "probe" and args.size == (640, 360) and args.region == (0.5, 0, 1, 0.5)
    assert args.source == "probe" and args.seconds == 20 and args.fps == 30
