"""HTTP contract: productions, sources, snapshots and every row of "bad input"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from media_server.app import create_app
from tests.conftest import ADMIN, Server, make_config
from tests.utils import aiortc_publish, wait_for


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def expect_error(resp: aiohttp.ClientResponse, status: int, *words: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) >= {"error", "detail"}
    for w in words:
        assert w in body["detail"], body
    assert "Traceback" not in body["detail"]
    return body


async def test_healthz(server: Server) -> None:
    async with server.http.get(f"{server.url}/healthz") as r:
        assert r.status == 200
        assert (await r.json())["status"] == "ok"


async def test_create_list_get_delete(server: Server) -> None:
    prod = await server.create_production(video={"width": 640, "height": 360, "fps": 25})
    assert prod["id"] == "quake" and prod["title"] == "甘孜 6.8 级地震"
    assert prod["video"] == {"width": 640, "height": 360, "fps": 25}
    assert len(prod["publish_token"]) >= 22 and len(prod["director_token"]) >= 22
    assert prod["publish_token"] != prod["director_token"]
    async with server.http.get(f"{server.url}/api/productions", headers=server.admin()) as r:
        assert [p["id"] for p in (await r.json())["productions"]] == ["quake"]
    got = await server.production("quake", prod["director_token"])
    assert got["sources"] == [] and "director_token" not in got
    assert got["publish_token"] == prod["publish_token"]  # the director hands out the link
    async with server.http.get(f"{server.url}/api/productions/quake/public") as r:
        assert r.status == 200  # no token: what a viewer's page may know
        assert await r.json() == {"id": "quake", "title": "甘孜 6.8 级地震", "state": "active"}
    async with server.http.get(f"{server.url}/api/productions/nope/public") as r:
        await expect_error(r, 404, "nope")
    async with server.http.post(f"{server.url}/api/productions", headers=server.admin(),
                                json={"id": "quake"}) as r:
        await expect_error(r, 409, "already exists")
    async with server.http.delete(f"{server.url}/api/productions/quake",
                                  headers=server.admin()) as r:
        assert r.status == 200 and (await r.json())["state"] == "ended"
    async with server.http.get(f"{server.url}/api/productions/quake",
                               headers=bearer(prod["director_token"])) as r:
        await expect_error(r, 404, "quake")


@pytest.mark.parametrize(("body", "field"), [
    ({"title": "x"}, "id"),
    ({"id": "bad id!"}, "id"),
    ({"id": "ok", "title": 5}, "title"),
    ({"id": "ok", "video": {"width": 1281}}, "video"),
    ({"id": "ok", "video": {"fps": "30"}}, "video.fps"),
    ({"id": "ok", "video": {"depth": 10}}, "video.depth"),
    ({"id": "ok", "max_sources": 0}, "max_sources"),
    ({"id": "ok", "colour": "red"}, "colour"),
])
async def test_create_rejects_bad_fields(server: Server, body: dict, field: str) -> None:
    async with server.http.post(f"{server.url}/api/productions", json=body,
                                headers=server.admin()) as r:
        err = await expect_error(r, 400)
        assert err.get("field") == field or field in err["detail"]


async def test_auth_errors(server: Server) -> None:
    prod = await server.create_production()
    url = f"{server.url}/api/productions"
    async with server.http.post(url, json={"id": "x"}) as r:
        await expect_error(r, 401, "bearer")
        assert "Bearer" in r.headers["WWW-Authenticate"]
    async with server.http.post(url, json={"id": "x"}, headers=bearer("wrong")) as r:
        await expect_error(r, 403)
    # a production's director token is not the admin token
    async with server.http.post(url, json={"id": "x"},
                                headers=bearer(prod["director_token"])) as r:
        await expect_error(r, 403)
    # the publish token cannot read the production
    async with server.http.get(f"{url}/quake", headers=bearer(prod["publish_token"])) as r:
        await expect_error(r, 403)
    async with server.http.get(f"{url}/nope", headers=bearer(prod["director_token"])) as r:
        await expect_error(r, 404, "nope")


async def test_json_body_errors(server: Server) -> None:
    url = f"{server.url}/api/productions"
    async with server.http.post(url, data="{not json", headers={
            **server.admin(), "Content-Type": "application/json"}) as r:
        await expect_error(r, 400, "JSON")
    async with server.http.post(url, data="id=x", headers={
            **server.admin(), "Content-Type": "application/x-www-form-urlencoded"}) as r:
        await expect_error(r, 415)
    async with server.http.post(url, data=b"[" + b"1," * 40000 + b"1]", headers={
            **server.admin(), "Content-Type": "application/json"}) as r:
        await expect_error(r, 413)


class TestWhipBadInput:
    async def post(self, server: Server, data: bytes | str, *, token: str | None,
                   ctype: str = "application/sdp", path: str = "quake/cam") -> Any:
        headers = {"Content-Type": ctype}
        if token:
            headers.update(bearer(token))
        return server.http.post(f"{server.url}/whip/{path}", data=data, headers=headers)

    async def test_auth_and_unknown(self, server: Server) -> None:
        prod = await server.create_production()
        async with await self.post(server, "v=0", token=None) as r:
            await expect_error(r, 401)
        async with await self.post(server, "v=0", token="wrong") as r:
            await expect_error(r, 403)
        async with await self.post(server, "v=0", token=prod["publish_token"],
                                   path="nope/cam") as r:
            await expect_error(r, 404, "nope")

    async def test_content_type_size_and_sdp(self, server: Server) -> None:
        tok = (await server.create_production())["publish_token"]
        async with await self.post(server, "v=0", token=tok, ctype="text/plain") as r:
            await expect_error(r, 415, "application/sdp")
        async with await self.post(server, "v=0\r\n" + "a=x\r\n" * 20000, token=tok) as r:
            await expect_error(r, 413, "limit")
        async with await self.post(server, "hello", token=tok) as r:
            await expect_error(r, 400, "does not parse")
        async with await self.post(server, "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
                                   token=tok) as r:
            await expect_error(r, 400, "no audio or video")
        async with await self.post(server, b"v=0\r\n\xff\xfe", token=tok) as r:
            await expect_error(r, 400, "UTF-8")
        async with await self.post(server, "v=0", token=tok, path="quake/bad%20name") as r:
            await expect_error(r, 400, "source id")

    async def test_no_codec_we_take(self, server: Server) -> None:
        prod = await server.create_production()
        # a real offer, with its video codecs renamed to one we do not decode
        from aiortc import RTCPeerConnection

        from tests.utils import ColorTrack

        pc = RTCPeerConnection()
        pc.addTransceiver(ColorTrack(64, 64), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp.replace("VP8/90000", "AV1/90000") \
            .replace("H264/90000", "AV1/90000")
        await pc.close()
        async with await self.post(server, sdp, token=prod["publish_token"]) as r:
            await expect_error(r, 400, "no codec we take", "AV1")

    async def test_patch_options_and_limit(self, server: Server) -> None:
        prod = await server.create_production(max_sources=1)
        async with server.http.options(f"{server.url}/whip/quake/cam",
                                       headers={"Origin": "https://phone.example",
                                                "Access-Control-Request-Method": "POST"}) as r:
            assert r.status == 204
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
        pub = await aiortc_publish(server.http, f"{server.url}/whip/quake/one",
                                   prod["publish_token"])
        other = None
        try:
            assert pub.status == 201
            async with server.http.patch(server.url + pub.location, data="a=ice-ufrag:x",
                                         headers={**bearer(prod["publish_token"]),
                                                  "Content-Type":
                                                  "application/trickle-ice-sdpfrag"}) as r:
                await expect_error(r, 405)
                assert "DELETE" in r.headers["Allow"]
            other = await aiortc_publish(server.http, f"{server.url}/whip/quake/two",
                                         prod["publish_token"])
            assert other.status == 503, other.answer
            assert other.response_headers["Retry-After"]
        finally:
            await pub.close()
            if other:
                await other.close()


async def test_test_sources_and_snapshot(server: Server) -> None:
    prod = await server.create_production(video={"width": 320, "height": 180, "fps": 30})
    d = bearer(prod["director_token"])
    url = f"{server.url}/api/productions/quake/sources"
    async with server.http.post(url, json={"id": "bars", "kind": "test"}, headers=d) as r:
        assert r.status == 201, await r.text()
    async with server.http.post(url, json={"id": "red", "kind": "test", "pattern": "solid",
                                           "color": "#ff0000"}, headers=d) as r:
        assert r.status == 201, await r.text()
    async with server.http.post(url, json={"id": "red", "kind": "test"}, headers=d) as r:
        await expect_error(r, 409, "already exists")

    async def both_live() -> bool:
        srcs = (await server.production("quake", prod["director_token"]))["sources"]
        return len(srcs) == 2 and all(s["state"] == "live" and s["frames_received"] > 5
                                      for s in srcs)

    await wait_for(both_live, 10, "test sources live")
    srcs = {s["id"]: s for s in (await server.production("quake",
                                                         prod["director_token"]))["sources"]}
    assert srcs["bars"]["kind"] == "test" and (srcs["bars"]["width"], srcs["bars"]["height"]) \
        == (320, 180)
    assert srcs["bars"]["audio_frames_received"] > 0
    async with server.http.get(f"{url}/red/snapshot.jpg", headers=d) as r:
        assert r.status == 200 and r.content_type == "image/jpeg"
        data = await r.read()
    import io

    frame = next(av.open(io.BytesIO(data)).decode(video=0))
    rgb = frame.to_ndarray(format="rgb24")
    centre = rgb[frame.height // 4, frame.width // 4].astype(int)
    assert centre[0] > 200 and centre[1] < 60 and centre[2] < 60, centre
    async with server.http.get(f"{url}/nope/snapshot.jpg", headers=d) as r:
        await expect_error(r, 404, "nope")
    async with server.http.delete(f"{url}/red", headers=d) as r:
        assert r.status == 204
    srcs = {s["id"]: s for s in (await server.production("quake",
                                                         prod["director_token"]))["sources"]}
    assert srcs["red"]["state"] == "ended" and srcs["bars"]["state"] == "live"


@pytest.mark.parametrize(("body", "what"), [
    ({"id": "p", "kind": "pull", "url": "javascript:alert(1)"}, "url"),
    ({"id": "p", "kind": "pull", "url": "concat:/etc/passwd|/etc/hosts"}, "url"),
    ({"id": "p", "kind": "pull", "url": 42}, "url"),
    ({"id": "p", "kind": "pull", "url": "/etc/passwd"}, "url"),
    ({"id": "p", "kind": "webcam"}, "kind"),
    ({"id": "p", "kind": "test", "pattern": "zebra"}, "pattern"),
    ({"id": "p", "kind": "test", "color": "red"}, "color"),
    ({"id": "p", "kind": "test", "fps": 0}, "fps"),
    ({"kind": "test"}, "id"),
])
async def test_add_source_bad_input(server: Server, body: dict, what: str) -> None:
    prod = await server.create_production()
    async with server.http.post(f"{server.url}/api/productions/quake/sources", json=body,
                                headers=bearer(prod["director_token"])) as r:
        err = await expect_error(r, 400)
        assert err.get("field") == what or what in err["detail"]


@pytest.mark.slow
async def test_pull_source_from_file_and_unreachable(server: Server, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 320, 240, "yuv420p"
        for i in range(50):
            f = av.VideoFrame.from_ndarray(np.full((240, 320, 3), i * 4, np.uint8),
                                           format="rgb24")
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    prod = await server.create_production()
    d = bearer(prod["director_token"])
    url = f"{server.url}/api/productions/quake/sources"
    async with server.http.post(url, json={"id": "file", "kind": "pull", "url": str(clip)},
                                headers=d) as r:
        assert r.status == 201, await r.text()
    async with server.http.post(url, json={"id": "gone", "kind": "pull",
                                           "url": "rtmp://127.0.0.1:1/live/x"},
                                headers=d) as r:
        assert r.status == 201, await r.text()

    async def states() -> dict[str, Any]:
        return {s["id"]: s for s in (await server.production("quake", d["Authorization"][7:]))
                ["sources"]}

    async def ready() -> bool:
        s = await states()
        return s["file"]["frames_received"] > 10 and bool(s["gone"]["error"])

    await wait_for(ready, 15, "file frames and an error on the unreachable pull")
    s = await states()
    assert (s["file"]["width"], s["file"]["height"]) == (320, 240)
    assert s["file"]["state"] == "live"
    assert s["gone"]["state"] in ("connecting", "error")
    async with server.http.get(f"{server.url}/healthz") as r:
        assert r.status == 200


async def test_productions_survive_restart(aiohttp_server: Any, tmp_path: Path) -> None:
    cfg = make_config()
    app = create_app(cfg, data_dir=tmp_path / "data")
    srv = await aiohttp_server(app)
    async with aiohttp.ClientSession() as http:
        s = Server(url=str(srv.make_url("")).rstrip("/"), app=app, http=http)
        prod = await s.create_production()
    await srv.close()
    app2 = create_app(cfg, data_dir=tmp_path / "data")
    srv2 = await aiohttp_server(app2)
    base = str(srv2.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/productions/quake",
                            headers=bearer(prod["director_token"])) as r:
            assert r.status == 200
            assert (await r.json())["title"] == "甘孜 6.8 级地震"
        async with http.get(f"{base}/api/productions", headers=bearer(ADMIN)) as r:
            assert len((await r.json())["productions"]) == 1
