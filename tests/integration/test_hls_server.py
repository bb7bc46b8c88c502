"""LL-HLS over real HTTP: a real Packager (libx264 + AAC) fed synthetic program frames.

Every test runs twice: against the aiohttp routes of the main port and against the HLS edge
listener (hls_packager/edge.py); both must answer alike."""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time

import aiohttp
import av
import m3u8
import pytest
from aiohttp import web
from yarl import URL

from hls_packager.config import HlsConfig, RenditionConfig
from hls_packager.edge import HlsEdge
from hls_packager.fmp4 import iter_boxes
from hls_packager.server import HlsRegistry, Packager, register_hls_routes
from hls_packager.testing import make_program_frame
from hls_packager.validate import check_media_playlist, check_playlist_update, parse_media_playlist

FPS = 30
SMALL = (
    RenditionConfig("hi", 320, 180, 400_000),
    RenditionConfig("lo", 160, 90, 150_000, audio_bitrate=64_000),
)


def small_config(**kw) -> HlsConfig:
    base = dict(renditions=SMALL, preset="ultrafast", block_timeout_targets=2.0, queue_frames=64)
    base.update(kw)
    return HlsConfig(**base)


class Feeder:
    """Pushes frames into a packager from a thread, like the switcher clock (paced or not)."""

    def __init__(self, packager: Packager, start: int = 0) -> None:
        self.packager = packager
        self.index = start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def push(self, count: int) -> None:
        for _ in range(count):
            self.packager.push(make_program_frame(self.index, FPS, 320, 180))
            self.index += 1

    def run_realtime(self) -> None:
        def loop() -> None:
            t0 = time.monotonic()
            n = 0
            while not self._stop.is_set():
                self.push(1)
                n += 1
                self._stop.wait(max(0.0, t0 + n / FPS - time.monotonic()))

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)


class EdgeClient:
    """The slice of aiohttp's TestClient the tests use, over the HLS edge listener."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    def get(self, path: str, **kw):
        return self.session.get(self.base + path, **kw)

    def make_url(self, path: str) -> URL:
        return URL(self.base + path)


@pytest.fixture(params=["main", "edge"])
async def serve_hls(request, aiohttp_client):
    """serve_hls(registry) -> a client of /hls/ on the main port (aiohttp) or on the edge."""
    edges: list[HlsEdge] = []
    sessions: list[aiohttp.ClientSession] = []

    async def make(registry: HlsRegistry):
        if request.param == "main":
            app = web.Application()
            register_hls_routes(app, registry)
            return await aiohttp_client(app)
        edge = HlsEdge(registry)
        port = await edge.start("127.0.0.1", 0)
        edges.append(edge)
        session = aiohttp.ClientSession()
        sessions.append(session)
        return EdgeClient(session, f"http://127.0.0.1:{port}")

    yield make
    for session in sessions:
        await session.close()
    for edge in edges:
        await edge.close()


@pytest.fixture
async def hls(serve_hls, tmp_path):
    registry = HlsRegistry(tmp_path)
    client = await serve_hls(registry)
    packager = registry.create("prod1", FPS, small_config())
    packager.start()
    feeder = Feeder(packager)
    yield client, packager, feeder, registry
    feeder.stop()
    await packager.aclose()


async def get_playlist(client, path: str, **params) -> str:
    r = await client.get(path, params=params)
    assert r.status == 200, await r.text()
    return await r.text()


async def test_multivariant_and_codecs(hls):
    client, packager, _feeder, _ = hls
    r = await client.get("/hls/prod1/index.m3u8")
    assert r.status == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Cache-Control"] == "no-cache"
    assert r.content_type == "application/vnd.apple.mpegurl"
    text = await r.text()
    pl = m3u8.loads(text)
    assert [p.uri for p in pl.playlists] == ["hi/index.m3u8", "lo/index.m3u8"]
    codecs = pl.playlists[0].stream_info.codecs
    assert re.fullmatch(r"avc1\.[0-9a-f]{6},mp4a\.40\.2", codecs)
    sps = packager._pipelines["hi"].encoder.avc.sps[0]
    assert codecs.startswith(f"avc1.{sps[1]:02x}{sps[2]:02x}{sps[3]:02x}")
    assert pl.playlists[0].stream_info.resolution == (320, 180)
    assert pl.playlists[0].stream_info.frame_rate == 30.0
    init = await client.get("/hls/prod1/hi/init0.mp4")
    assert init.status == 200 and "immutable" in init.headers["Cache-Control"]
    body = await init.read()
    assert body[4:8] == b"ftyp"


async def test_blocking_reload_returns_when_part_exists(hls):
    client, packager, feeder, _ = hls
    feeder.run_realtime()
    text = await get_playlist(client, "/hls/prod1/hi/index.m3u8")
    assert check_media_playlist(text) == []
    hint = parse_media_playlist(text).preload_hint
    msn, part = map(int, re.fullmatch(r"part(\d+)\.(\d+)\.m4s", hint).groups())
    out = packager.outputs["hi"]
    assert not out.window.has(msn, part)
    t0 = time.time()
    text2 = await get_playlist(client, "/hls/prod1/hi/index.m3u8", _HLS_msn=msn, _HLS_part=part)
    t1 = time.time()
    assert f'URI="{hint}"' in text2.split("#EXT-X-PRELOAD-HINT")[0]
    published = out.window.part(msn, part).marks[-1]["published"]
    # answered after the part was published, and promptly (not on some polling interval)
    assert t0 <= published <= t1
    assert t1 - published < 0.1
    assert check_media_playlist(text2) == []
    assert check_playlist_update(text, text2) == []
    # the other rendition is reported
    assert '#EXT-X-RENDITION-REPORT:URI="../lo/index.m3u8"' in text2


async def test_preload_hinted_part_streams_its_chunks_as_produced(hls):
    client, packager, feeder, _ = hls
    feeder.run_realtime()
    # wait on a part boundary, so the hinted part has not started yet
    text = await get_playlist(client, "/hls/prod1/lo/index.m3u8")
    hint = parse_media_playlist(text).preload_hint
    msn, part = map(int, re.fullmatch(r"part(\d+)\.(\d+)\.m4s", hint).groups())
    text = await get_playlist(client, "/hls/prod1/lo/index.m3u8", _HLS_msn=msn, _HLS_part=part)
    hint = parse_media_playlist(text).preload_hint
    msn, part = map(int, re.fullmatch(r"part(\d+)\.(\d+)\.m4s", hint).groups())
    t0 = time.time()
    r = await client.get(f"/hls/prod1/lo/{hint}")
    assert r.status == 200
    assert r.headers.get("Transfer-Encoding") == "chunked"
    assert "immutable" in r.headers["Cache-Control"]
    received: list[tuple[float, bytes]] = []
    async for piece in r.content.iter_any():
        received.append((time.time(), piece))
    data = b"".join(piece for _, piece in received)
    p = packager.outputs["lo"].window.part(msn, part)
    assert p is not None and p.data == data
    published = p.marks[-1]["published"]
    assert published >= t0
    # 6 frames, one CMAF chunk each, each sent when its frame is encoded: the first bytes
    # arrive well before the part is complete
    assert received[0][0] < published - 0.05, (received[0][0] - t0, published - t0)
    assert [k for k, _, _ in iter_boxes(data)] == ["moof", "mdat"] * 6


async def test_part_request_errors(hls):
    client, _packager, feeder, _ = hls
    feeder.push(FPS + 6)  # segment 0 and part 1.0
    await get_playlist(client, "/hls/prod1/lo/index.m3u8", _HLS_msn=1, _HLS_part=0)
    # a part two after the hint is not held: 404 at once
    t0 = time.monotonic()
    r = await client.get("/hls/prod1/lo/part1.3.m4s")
    assert r.status == 404 and time.monotonic() - t0 < 0.5
    assert (await r.json())["error"] == "not_found"
    # the hinted part never comes (nothing is pushed): 503 in the project's shape, Retry-After
    r = await client.get("/hls/prod1/lo/part1.1.m4s")
    assert r.status == 503
    assert r.headers["Retry-After"] == "1" and r.headers["Access-Control-Allow-Origin"] == "*"
    body = await r.json()
    assert body["error"] == "unavailable" and "in time" in body["detail"]
    # the part starts (one chunk of 2 frames goes out) but is never completed: the transfer is
    # cut, so the client cannot take the first chunk for a whole part
    feeder.push(3)
    r = await client.get("/hls/prod1/lo/part1.1.m4s")
    assert r.status == 200 and r.headers.get("Transfer-Encoding") == "chunked"
    with pytest.raises(aiohttp.ClientPayloadError):
        await r.read()


async def test_bad_requests(hls):
    client, _packager, feeder, _ = hls
    feeder.push(40)
    await get_playlist(client, "/hls/prod1/hi/index.m3u8", _HLS_msn=1, _HLS_part=0)
    base = "/hls/prod1/hi/index.m3u8"
    for params in (
        {"_HLS_msn": "abc"},
        {"_HLS_msn": "-1"},
        {"_HLS_msn": "1", "_HLS_part": "x"},
        {"_HLS_part": "1"},
        {"_HLS_skip": "NO"},
        {"_HLS_msn": "9"},  # more than two segments ahead
        {"_HLS_msn": "3"},  # last segment with a URI is 0 (1 is in progress): 0 + 2 < 3
    ):
        r = await client.get(base, params=params)
        assert r.status == 400, params
        body = await r.json()
        assert body["error"] == "bad_request" and body["detail"], body
        assert body["field"] == next(k for k in ("_HLS_part", "_HLS_msn", "_HLS_skip")
                                     if k in params) or params == {"_HLS_part": "1"}
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert r.headers["Cache-Control"] == "no-cache"
    for path in (
        "/hls/nope/index.m3u8",
        "/hls/nope/hi/index.m3u8",
        "/hls/prod1/mid/index.m3u8",
        "/hls/prod1/hi/seg999.m4s",
        "/hls/prod1/hi/init7.mp4",
        "/hls/prod1/hi/evil.txt",
        "/hls/prod1/hi/part0.9.m4s",  # segment 0 has 5 parts
    ):
        r = await client.get(path)
        assert r.status == 404, path
        assert (await r.json())["error"] == "not_found"


async def test_advance_part_limit_and_part_index_past_the_last(hls):
    client, _packager, _feeder, registry = hls
    # 2 s segments of 10 parts: Advance Part Limit = 3 / 0.2 = 15 parts
    p = registry.create("long", FPS, small_config(renditions=SMALL[1:], segment_target_s=2.0))
    p.start()
    feeder = Feeder(p)
    feeder.push(2 * FPS)
    base = "/hls/long/lo/index.m3u8"
    text = await get_playlist(client, base, _HLS_msn=0)
    assert "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part1.0.m4s\"" in text
    r = await client.get(base, params={"_HLS_msn": "2", "_HLS_part": "9"})  # 20 parts ahead
    assert r.status == 400
    assert (await r.json())["field"] == "_HLS_part"
    # _HLS_part past the last part of segment 0 = part 0 of segment 1: held until it exists
    task = asyncio.create_task(get_playlist(client, base, _HLS_msn=0, _HLS_part=10))
    await asyncio.sleep(0.3)
    assert not task.done()
    feeder.push(6)
    text = await asyncio.wait_for(task, 5)
    assert 'URI="part1.0.m4s"' in text.split("#EXT-X-PRELOAD-HINT")[0]
    await p.aclose()


async def test_expired_part_404_and_delta_update(serve_hls, tmp_path):
    registry = HlsRegistry(tmp_path)
    client = await serve_hls(registry)
    packager = registry.create("p", FPS, small_config(renditions=SMALL[1:]))
    packager.start()
    feeder = Feeder(packager)
    base = "/hls/p/lo/index.m3u8"
    for msn in range(9):  # fast-forward 9 segments, each fetched by a blocking reload
        feeder.push(FPS)
        text = await get_playlist(client, base, _HLS_msn=msn)
    assert check_media_playlist(text) == []
    pl = m3u8.loads(text)
    assert pl.media_sequence == 2  # window of 7 complete segments: 2..8
    assert (await client.get("/hls/p/lo/part1.0.m4s")).status == 404
    assert (await client.get("/hls/p/lo/part8.0.m4s")).status == 200
    delta = await get_playlist(client, base, _HLS_skip="YES")
    assert "#EXT-X-SKIP:SKIPPED-SEGMENTS=1" in delta
    assert "seg2.m4s" not in delta and "seg3.m4s" in delta
    assert check_media_playlist(delta) == []
    # _HLS_skip=v2 (RFC 8216bis 6.2.5.1): a delta update whose EXT-X-SKIP also says which date
    # ranges were removed (none: we write no EXT-X-DATERANGE)
    delta2 = await get_playlist(client, base, _HLS_skip="v2")
    assert '#EXT-X-SKIP:SKIPPED-SEGMENTS=1,RECENTLY-REMOVED-DATERANGES=""' in delta2
    assert delta2.replace(',RECENTLY-REMOVED-DATERANGES=""', "") == delta
    assert check_media_playlist(delta2) == []
    # 503 when the requested segment does not show up in time (nothing is pushed any more)
    t0 = time.monotonic()
    r = await client.get(base, params={"_HLS_msn": "10"})
    assert r.status == 503
    assert 1.5 < time.monotonic() - t0 < 4
    assert r.headers["Retry-After"] == "1"
    assert (await r.json())["error"] == "unavailable"
    await packager.aclose()


async def test_replay_after_stop_and_restart(serve_hls, tmp_path):
    registry = HlsRegistry(tmp_path)
    client = await serve_hls(registry)
    packager = registry.create("p", FPS, small_config(renditions=SMALL[1:]))
    packager.start()
    feeder = Feeder(packager)
    for msn in range(2):  # push no faster than the encoder (a full queue drops frames)
        feeder.push(FPS)
        await get_playlist(client, "/hls/p/lo/index.m3u8", _HLS_msn=msn)
    feeder.push(15)
    await packager.aclose()
    text = await get_playlist(client, "/hls/p/lo/index.m3u8")
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.endswith("#EXT-X-ENDLIST\n")
    # RFC 8216bis 6.2.5.1/6.2.5.2: with EXT-X-ENDLIST, _HLS_skip/_HLS_msn/_HLS_part are ignored
    t0 = time.monotonic()
    assert await get_playlist(client, "/hls/p/lo/index.m3u8", _HLS_msn=99, _HLS_part=3,
                              _HLS_skip="YES") == text
    assert time.monotonic() - t0 < 0.5
    assert "EXT-X-PART" not in text
    assert check_media_playlist(text) == []
    assert [s.uri for s in m3u8.loads(text).segments] == ["seg0.m4s", "seg1.m4s", "seg2.m4s"]
    url = str(client.make_url("/hls/p/lo/index.m3u8"))
    frames = await asyncio.get_running_loop().run_in_executor(None, _decode_all, url)
    assert frames == 75

    # a new server process over the same data dir serves the replay
    registry2 = HlsRegistry(tmp_path)
    client2 = await serve_hls(registry2)
    text2 = await get_playlist(client2, "/hls/p/lo/index.m3u8")
    assert text2 == text
    mv = await get_playlist(client2, "/hls/p/index.m3u8")
    assert "mp4a.40.2" in mv
    r = await client2.get("/hls/p/lo/seg2.m4s")
    assert r.status == 200

    # going live again continues the numbering after a discontinuity with a new init
    p2 = registry2.create("p", FPS, small_config(renditions=SMALL[1:]))
    p2.start()
    Feeder(p2, start=1000).push(31)
    live = await get_playlist(client2, "/hls/p/lo/index.m3u8", _HLS_msn=3)
    assert check_media_playlist(live) == []
    # the window of the new run starts at msn 3, after the discontinuity
    assert "#EXT-X-DISCONTINUITY" in live and 'EXT-X-MAP:URI="init1.mp4"' in live
    await p2.aclose()
    replay = await get_playlist(client2, "/hls/p/lo/index.m3u8")
    assert replay.count("#EXT-X-DISCONTINUITY\n") == 1
    assert "init0.mp4" in replay and "init1.mp4" in replay


def _decode_all(url: str) -> int:
    with av.open(url, timeout=10) as c:
        return sum(1 for _ in c.decode(video=0))


def _decode_live(url: str, frames: int) -> list[int]:
    pts = []
    with av.open(url, timeout=10) as c:
        for f in c.decode(video=0):
            pts.append(f.pts)
            if len(pts) >= frames:
                break
    return pts


@pytest.mark.slow
async def test_ffmpeg_plays_live_playlist(hls):
    client, _packager, feeder, _ = hls
    for msn in range(4):  # four segments of history, then real time
        feeder.push(FPS)
        await get_playlist(client, "/hls/prod1/hi/index.m3u8", _HLS_msn=msn)
    feeder.run_realtime()
    url = str(client.make_url("/hls/prod1/index.m3u8"))
    pts = await asyncio.get_running_loop().run_in_executor(None, _decode_live, url, 75)
    assert len(pts) == 75
    steps = {b - a for a, b in itertools.pairwise(pts)}
    assert len(steps) == 1  # continuous timestamps
