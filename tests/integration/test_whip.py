"""WHIP ingest over loopback with real peers."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from media_server.config import Config
from tests.conftest import Server, make_config
from tests.utils import PyavWhipPublisher, aiortc_publish, wait_for


async def source_stats(server: Server, pid: str, token: str, sid: str) -> dict | None:
    prod = await server.production(pid, token)
    return next((s for s in prod["sources"] if s["id"] == sid), None)


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_aiortc_publisher_frames_arrive(server: Server, codec: str) -> None:
    prod = await server.create_production()
    url = f"{server.url}/whip/quake/cam1"
    pub = await aiortc_publish(server.http, url, prod["publish_token"], codec=codec,
                               width=640, height=360)
    try:
        assert pub.status == 201, pub.answer
        assert pub.location and pub.location.startswith("/whip/quake/cam1/")
        assert pub.response_headers.get("ETag")
        assert pub.response_headers["Content-Type"].startswith("application/sdp")

        async def live() -> bool:
            s = await source_stats(server, "quake", prod["director_token"], "cam1")
            return bool(s and s["frames_received"] >= 10 and s["audio_frames_received"] > 5)

        await wait_for(live, 20, f"{codec} frames from the aiortc publisher")
        s = await source_stats(server, "quake", prod["director_token"], "cam1")
        assert s["state"] == "live" and s["kind"] == "whip"
        assert (s["width"], s["height"]) == (640, 360)
        assert s["video_codec"] == codec
        async with server.http.get(
                f"{server.url}/api/productions/quake/sources/cam1/snapshot.jpg",
                headers={"Authorization": f"Bearer {prod['director_token']}"}) as r:
            assert r.status == 200 and r.content_type == "image/jpeg"
            assert (await r.read())[:2] == b"\xff\xd8"
        # DELETE ends the session
        async with server.http.delete(server.url + pub.location, headers={
                "Authorization": f"Bearer {prod['publish_token']}"}) as r:
            assert r.status == 200
        s = await source_stats(server, "quake", prod["director_token"], "cam1")
        assert s["state"] == "ended"
        async with server.http.delete(server.url + pub.location, headers={
                "Authorization": f"Bearer {prod['publish_token']}"}) as r:
            assert r.status == 404
    finally:
        await pub.close()


@pytest.mark.slow
async def test_rsa_certificate_publisher(server: Server) -> None:
    """GStreamer webrtcbin's DTLS identity is RSA: aiortc out of the box cannot connect."""
    prod = await server.create_production()
    pub = await aiortc_publish(server.http, f"{server.url}/whip/quake/gst",
                               prod["publish_token"], rsa_certificate=True)
    try:
        assert pub.status == 201, pub.answer

        async def live() -> bool:
            s = await source_stats(server, "quake", prod["director_token"], "gst")
            return bool(s and s["frames_received"] >= 5)

        await wait_for(live, 20, "frames from the RSA-certificate publisher")
    finally:
        await pub.close()


@pytest.mark.slow
async def test_pyav_whip_muxer_default_settings(server: Server) -> None:
    prod = await server.create_production()
    pub = PyavWhipPublisher(f"{server.url}/whip/quake/ffmpeg", prod["publish_token"],
                            width=640, height=360).start()
    try:
        async def live() -> bool:
            if pub.error:
                raise AssertionError(f"whip muxer failed: {pub.error}")
            s = await source_stats(server, "quake", prod["director_token"], "ffmpeg")
            return bool(s and s["frames_received"] >= 10
                        and s["capture_to_arrival_ms"] is not None)

        await wait_for(live, 30, "frames (with RTCP SR capture times) from FFmpeg's whip muxer")
        s = await source_stats(server, "quake", prod["director_token"], "ffmpeg")
        assert (s["width"], s["height"]) == (640, 360)
        assert s["video_codec"] == "H264"
        # FFmpeg sends RTCP sender reports: frames carry the sender's capture wall clock
        # (same machine, same clock: capture → arrival is a small positive delay)
        delay = s["capture_to_arrival_ms"]
        assert delay is not None and 0 <= delay < 2000, delay
    finally:
        rc = await asyncio.to_thread(pub.stop)
    assert rc == 0, pub.error
    # closing the muxer sends the WHIP DELETE: the source ends
    s = await source_stats(server, "quake", prod["director_token"], "ffmpeg")
    assert s["state"] == "ended"


@pytest.mark.slow
async def test_reconnect_replaces_old_session(server: Server) -> None:
    prod = await server.create_production()
    url = f"{server.url}/whip/quake/phone"
    first = await aiortc_publish(server.http, url, prod["publish_token"], rgb=(250, 0, 0))
    second = None
    try:
        assert first.status == 201
        d = prod["director_token"]

        async def has_frames() -> bool:
            s = await source_stats(server, "quake", d, "phone")
            return bool(s and s["frames_received"] > 3)

        await wait_for(has_frames, 20, "first session frames")
        # the phone switches network: a new offer under the same name, old peer still up
        second = await aiortc_publish(server.http, url, prod["publish_token"],
                                      rgb=(0, 0, 250))
        assert second.status == 201 and second.location != first.location
        new_id = second.location.rsplit("/", 1)[1]

        async def second_live() -> bool:
            s = await source_stats(server, "quake", d, "phone")
            return bool(s and s["info"]["session"] == new_id and s["frames_received"] > 3)

        await wait_for(second_live, 20, "frames from the second session")
        # the old peer is told: its DTLS/ICE transport is closed by the server
        await wait_for(lambda: first.pc.connectionState in ("closed", "failed"), 30,
                       "old publisher disconnected")
        # the old session's resource is gone
        async with server.http.delete(server.url + first.location, headers={
                "Authorization": f"Bearer {prod['publish_token']}"}) as r:
            assert r.status == 404
    finally:
        await first.close()
        if second:
            await second.close()


@pytest.mark.slow
async def test_ended_session_is_freed_without_the_cyclic_gc(server: Server) -> None:
    """An ended session, its Source (last video frames, audio resampler: a filter graph with
    threads of its own) go away by reference counting once a reconnect replaces the source;
    none of them may wait in a reference cycle for the cyclic GC (which can take hours on a
    busy server: native memory grew per reconnect)."""
    from media_server.web import WHIP

    prod = await server.create_production()
    d, p = prod["director_token"], prod["publish_token"]
    url = f"{server.url}/whip/quake/phone"
    gc.collect()
    gc.disable()
    try:
        first = await aiortc_publish(server.http, url, p)
        second = None
        try:
            assert first.status == 201

            async def has_media() -> bool:
                s = await source_stats(server, "quake", d, "phone")
                return bool(s and s["frames_received"] > 3 and s["audio_frames_received"] > 3)

            await wait_for(has_media, 20, "first session frames and audio")
            (session,) = server.app[WHIP].sessions.values()
            assert session.source._resampler is not None  # audio arrived: it has one
            refs = {"session": weakref.ref(session), "source": weakref.ref(session.source)}
            del session
            async with server.http.delete(server.url + first.location,
                                          headers={"Authorization": f"Bearer {p}"}) as r:
                assert r.status == 200
            await first.close()
            # the publisher comes back under the same name: the ended source is replaced
            second = await aiortc_publish(server.http, url, p)
            assert second.status == 201
            await wait_for(has_media, 20, "second session frames and audio")
            await wait_for(lambda: all(r() is None for r in refs.values()), 5,
                           "the ended session freed by reference counting")
        finally:
            await first.close()
            if second:
                await second.close()
    finally:
        gc.enable()


class TestSessionLifetime:
    @pytest.fixture
    def config(self) -> Config:
        return make_config(stall_timeout_s=0.5, connect_timeout_s=2.0,
                           session_idle_timeout_s=2.0)

    @pytest.mark.slow
    async def test_publisher_gone_silent_is_closed(self, server: Server) -> None:
        prod = await server.create_production()
        pub = await aiortc_publish(server.http, f"{server.url}/whip/quake/mute",
                                   prod["publish_token"], audio=False)
        try:
            async def state() -> dict | None:
                return await source_stats(server, "quake", prod["director_token"], "mute")

            await wait_for(lambda: _has(state(), "state", "live"), 20, "live")
            assert pub.video is not None
            pub.video.sending.clear()  # nothing at all arrives any more, ICE is still up
            await wait_for(lambda: _has(state(), "state", "ended"), 10, "idle session closed")
            s = await state()
            assert s is not None and s["info"]["end_reason"] == "no media for 2 s"
        finally:
            await pub.close()

    @pytest.mark.slow
    async def test_stalled_then_live_again(self, server: Server) -> None:
        prod = await server.create_production()
        d = prod["director_token"]
        pub = await aiortc_publish(server.http, f"{server.url}/whip/quake/cam",
                                   prod["publish_token"])
        try:
            async def state(want: str) -> bool:
                s = await source_stats(server, "quake", d, "cam")
                return bool(s and s["state"] == want)

            await wait_for(lambda: state("live"), 20, "live")
            assert pub.video is not None
            pub.video.sending.clear()  # camera freezes, connection stays up
            await wait_for(lambda: state("stalled"), 5, "stalled")
            pub.video.sending.set()
            await wait_for(lambda: state("live"), 5, "live again")
        finally:
            await pub.close()

    @pytest.mark.slow
    async def test_never_connecting_session_is_closed(self, server: Server) -> None:
        """An offer whose candidates lead nowhere: the session ends after connect_timeout_s."""
        import re

        from aiortc import RTCPeerConnection

        from tests.utils import ColorTrack

        prod = await server.create_production()
        pc = RTCPeerConnection()
        pc.addTransceiver(ColorTrack(64, 64), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        await pc.close()  # nobody will answer ICE checks
        sdp = re.sub(r"a=candidate:.*\r\n", "", pc.localDescription.sdp)
        sdp = sdp.replace("a=end-of-candidates", "a=candidate:1 1 udp 2130706431 127.0.0.1 9 "
                                                 "typ host\r\na=end-of-candidates")
        async with server.http.post(f"{server.url}/whip/quake/ghost", data=sdp, headers={
                "Authorization": f"Bearer {prod['publish_token']}",
                "Content-Type": "application/sdp"}) as r:
            assert r.status == 201, await r.text()

        async def ended() -> bool:
            s = await source_stats(server, "quake", prod["director_token"], "ghost")
            return bool(s and s["state"] == "ended")

        await wait_for(ended, 10, "session closed by the connect watchdog")
        s = await source_stats(server, "quake", prod["director_token"], "ghost")
        assert "not connected" in s["error"] or "failed" in s["error"]
        async with server.http.get(f"{server.url}/healthz") as r:
            assert (await r.json())["whip_sessions"] == 0


@pytest.mark.slow
async def test_bad_publishers_do_not_disturb_a_live_one(server: Server) -> None:
    """Garbage offers, a never-connecting session and an abrupt disconnect in another
    production (and beside it) leave a live publisher's frame rate untouched."""
    good = await server.create_production("good")
    bad = await server.create_production("bad")
    pub = await aiortc_publish(server.http, f"{server.url}/whip/good/cam",
                               good["publish_token"])
    try:
        assert pub.status == 201

        async def frames() -> int:
            s = await source_stats(server, "good", good["director_token"], "cam")
            return s["frames_received"] if s else 0

        await wait_for(lambda: _gt(frames(), 10), 20, "good publisher live")
        n0 = await frames()
        t0 = asyncio.get_running_loop().time()
        hdr = {"Authorization": f"Bearer {bad['publish_token']}",
               "Content-Type": "application/sdp"}
        for body in ("garbage", "v=0\r\n" + "x" * 70000, "v=0\r\nm=video 9 RTP/AVP 0\r\n"):
            async with server.http.post(f"{server.url}/whip/bad/x", data=body,
                                        headers=hdr) as r:
                assert r.status in (400, 413)
        rude = await aiortc_publish(server.http, f"{server.url}/whip/bad/rude",
                                    bad["publish_token"])
        assert rude.status == 201
        await asyncio.sleep(1.0)
        await rude.close()  # vanishes without a WHIP DELETE
        # the same name in the good production from a garbage offer: rejected, cam untouched
        async with server.http.post(f"{server.url}/whip/good/cam", data="garbage", headers={
                "Authorization": f"Bearer {good['publish_token']}",
                "Content-Type": "application/sdp"}) as r:
            assert r.status == 400
        await asyncio.sleep(1.0)
        n1 = await frames()
        fps = (n1 - n0) / (asyncio.get_running_loop().time() - t0)
        assert fps > 20, f"good publisher slowed to {fps:.1f} fps"
        s = await source_stats(server, "good", good["director_token"], "cam")
        assert s["state"] == "live"
    finally:
        await pub.close()


async def _gt(value: object, n: int) -> bool:
    return await value > n  # type: ignore[operator]


async def _has(stats: object, key: str, value: object) -> bool:
    s = await stats  # type: ignore[misc]
    return bool(s and s[key] == value)


@pytest.mark.slow
async def test_ffmpeg_publisher_stays_past_the_consent_timeout(server: Server) -> None:
    """FFmpeg's whip muxer does not answer ICE consent checks; aioice alone would close the
    session after 30 s. It must keep publishing as long as it sends media."""
    prod = await server.create_production()
    pub = PyavWhipPublisher(f"{server.url}/whip/quake/long", prod["publish_token"],
                            width=320, height=180, seconds=45).start()
    try:
        async def frames() -> int:
            s = await source_stats(server, "quake", prod["director_token"], "long")
            return s["frames_received"] if s and s["state"] == "live" else 0

        await wait_for(lambda: _positive(frames()), 30, "FFmpeg publisher live")
        t0 = asyncio.get_running_loop().time()
        await asyncio.sleep(36)  # past aioice's 6 x 5 s consent window
        assert pub.error is None, pub.error
        before = await frames()
        await asyncio.sleep(2)
        s = await source_stats(server, "quake", prod["director_token"], "long")
        assert s is not None and s["state"] == "live", s
        assert await frames() > before, "no new frames after 38 s"
        assert asyncio.get_running_loop().time() - t0 > 37
    finally:
        await asyncio.to_thread(pub.stop)


async def _positive(value: object) -> bool:
    return await value > 0  # type: ignore[operator]
