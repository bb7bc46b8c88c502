"""Switcher over HTTP: commands, program.jpg, state in GET, events WebSocket."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from tests.conftest import Server
from tests.utils import aiortc_publish, wait_for

RED, BLUE, GREEN = "#ff0000", "#0000ff", "#00ff00"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def decode_jpeg(data: bytes) -> np.ndarray:
    frame = next(av.open(io.BytesIO(data)).decode(video=0))
    return frame.to_ndarray(format="rgb24").astype(int)


def colour_name(px: np.ndarray) -> str:
    r, g, b = (int(v) for v in px)
    if r > 180 and g < 80 and b < 80:
        return "red"
    if b > 180 and r < 80 and g < 80:
        return "blue"
    if g > 150 and r < 100 and b < 100:
        return "green"
    if r < 30 and g < 30 and b < 30:
        return "black"
    return f"rgb({r},{g},{b})"


class Studio:
    def __init__(self, server: Server, prod: dict[str, Any]) -> None:
        self.server, self.prod = server, prod
        self.d = bearer(prod["director_token"])
        self.base = f"{server.url}/api/productions/{prod['id']}"

    async def op(self, **body: Any) -> tuple[int, dict[str, Any]]:
        async with self.server.http.post(f"{self.base}/switcher", json=body,
                                         headers=self.d) as r:
            return r.status, await r.json()

    async def ok(self, **body: Any) -> dict[str, Any]:
        status, data = await self.op(**body)
        assert status == 200, data
        return data

    async def program(self, bus: str = "program") -> np.ndarray:
        async with self.server.http.get(f"{self.base}/{bus}.jpg", headers=self.d) as r:
            assert r.status == 200, await r.text()
            return decode_jpeg(await r.read())

    async def on_air(self, bus: str = "program", at: tuple[float, float] = (0.5, 0.5)) -> str:
        img = await self.program(bus)
        h, w = img.shape[:2]
        return colour_name(img[int(h * at[1]), int(w * at[0])])

    async def add_solid(self, sid: str, color: str) -> None:
        async with self.server.http.post(f"{self.base}/sources", headers=self.d, json={
                "id": sid, "kind": "test", "pattern": "solid", "color": color,
                "tone_hz": 0}) as r:
            assert r.status == 201, await r.text()


@pytest.fixture
async def studio(server: Server) -> Studio:
    prod = await server.create_production(video={"width": 320, "height": 180, "fps": 30})
    s = Studio(server, prod)
    await s.add_solid("red", RED)
    await s.add_solid("blue", BLUE)

    async def live() -> bool:
        srcs = (await server.production("quake", prod["director_token"]))["sources"]
        return all(x["frames_received"] > 2 for x in srcs) and len(srcs) == 2

    await wait_for(live, 10, "test sources")
    return s


@pytest.mark.slow
async def test_cut_auto_and_state(studio: Studio) -> None:
    assert await studio.on_air() == "black"  # nothing on program: black, clock ticking
    st = await studio.ok(op="program", source="red")
    assert st["program"] == {"source": "red"}
    await wait_for(lambda: _is(studio, "red"), 3, "red on program")
    await studio.ok(op="preview", source="blue")
    assert await studio.on_air("preview") == "blue"
    st = await studio.ok(op="cut")
    assert st["program"] == {"source": "blue"} and st["preview"] == {"source": "red"}
    assert await studio.on_air() == "blue"
    prod = await studio.server.production("quake", studio.prod["director_token"])
    tally = {s["id"]: s["tally"] for s in prod["sources"]}
    assert tally == {"blue": "program", "red": "preview"}
    assert prod["program"] == {"source": "blue"} and "transition" in prod and "audio" in prod
    # a 300 ms mix: it ends with red on program
    st = await studio.ok(op="auto", transition="mix", duration_ms=300)
    assert st["transition"]["running"] is True

    async def mixed() -> bool:
        p = await studio.server.production("quake", studio.prod["director_token"])
        return p["program"] == {"source": "red"} and p["transition"]["running"] is False

    await wait_for(mixed, 3, "mix to red done")
    assert await studio.on_air() == "red"


async def _is(studio: Studio, name: str) -> bool:
    return await studio.on_air() == name


@pytest.mark.slow
async def test_layout_and_lower_third(studio: Studio) -> None:
    await studio.ok(op="layout", name="two", kind="side_by_side", sources=["red", "blue"])
    await studio.ok(op="program", layout="two")

    async def split() -> bool:
        return (await studio.on_air(at=(0.25, 0.5)), await studio.on_air(at=(0.75, 0.5))) \
            == ("red", "blue")

    await wait_for(split, 3, "side by side on program")
    await studio.ok(op="overlay", action="define", name="lt", kind="lower_third",
                    title="甘孜 6.8 级地震", subtitle="记者 张伟 · 现场连线")
    before = await studio.program()
    await studio.ok(op="overlay", action="show", name="lt")

    async def shown() -> bool:
        after = await studio.program()
        h = after.shape[0]
        return float(np.abs(after[int(h * 0.7):] - before[int(h * 0.7):]).mean()) > 10

    await wait_for(shown, 3, "lower third visible in the bottom third of program.jpg")


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"op": "preview", "source": "nope"}, 404, None),
    ({"op": "program", "layout": "nope"}, 404, None),
    ({"op": "warp"}, 400, "op"),
    ({"op": "auto", "duration_ms": 20000}, 400, "duration_ms"),
    ({"op": "tbar", "position": 2}, 400, "position"),
    ({"op": "audio", "source": "red", "gain_db": "loud"}, 400, "gain_db"),
    ({"op": "cut"}, 409, None),
])
async def test_bad_commands_change_nothing(studio: Studio, body: dict, status: int,
                                           field: str | None) -> None:
    await studio.ok(op="program", source="red")
    before = (await studio.server.production("quake", studio.prod["director_token"]))
    code, err = await studio.op(**body)
    assert code == status, err
    assert set(err) >= {"error", "detail"}
    if field:
        assert err.get("field") == field or field in err["detail"], err
    after = await studio.server.production("quake", studio.prod["director_token"])
    for k in ("program", "preview", "layouts", "overlays", "audio"):
        assert after[k] == before[k], k


async def test_switcher_auth(studio: Studio) -> None:
    async with studio.server.http.post(f"{studio.base}/switcher", json={"op": "cut"},
                                       headers=bearer(studio.prod["publish_token"])) as r:
        assert r.status == 403
    async with studio.server.http.get(f"{studio.base}/program.jpg") as r:
        assert r.status == 401


@pytest.mark.slow
async def test_events_websocket(studio: Studio) -> None:
    http = studio.server.http
    url = f"{studio.base}/events"
    async with http.ws_connect(url) as bad:
        await bad.send_json({"token": "wrong"})
        msg = await bad.receive_json()
        assert msg["type"] == "error"
    async with http.ws_connect(url) as ws1, http.ws_connect(url) as ws2, \
            http.ws_connect(url) as pub:
        for ws in (ws1, ws2):
            await ws.send_json({"token": studio.prod["director_token"]})
            assert (await ws.receive_json())["type"] == "hello"
        await pub.send_json({"token": studio.prod["publish_token"], "source": "blue"})
        assert (await pub.receive_json())["role"] == "publisher"
        assert (await pub.receive_json()) == {"type": "tally", "source": "blue", "tally": "off"}
        await studio.ok(op="program", source="blue")
        for ws in (ws1, ws2):  # both consoles see the change
            await _until(ws, lambda m: m["type"] == "state" and
                         m["state"]["program"] == {"source": "blue"})
            await _until(ws, lambda m: m["type"] == "meters")
        await _until(pub, lambda m: m == {"type": "tally", "source": "blue",
                                          "tally": "program"})


async def _until(ws: aiohttp.ClientWebSocketResponse, pred: Any, limit: int = 200) -> None:
    for _ in range(limit):
        msg = await ws.receive_json(timeout=5)
        if pred(msg):
            return
    raise AssertionError("event not seen")


@pytest.mark.slow
async def test_whip_source_cut_to_program(server: Server) -> None:
    prod = await server.create_production(video={"width": 320, "height": 180, "fps": 30})
    studio = Studio(server, prod)
    pub = await aiortc_publish(server.http, f"{server.url}/whip/quake/cam", prod["publish_token"],
                               width=640, height=360, rgb=(0, 255, 0))
    try:
        assert pub.status == 201

        async def live() -> bool:
            srcs = (await server.production("quake", prod["director_token"]))["sources"]
            return bool(srcs and srcs[0]["frames_received"] > 5)

        await wait_for(live, 20, "WHIP source live")
        await studio.ok(op="program", source="cam")
        await wait_for(lambda: _is(studio, "green"), 5, "WHIP source on program")
    finally:
        await pub.close()
