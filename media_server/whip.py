"""WHIP ingest (RFC 9725) on aiortc.

`POST /whip/{production}/{source}` takes an SDP offer and answers 201 with the SDP answer, the
session's `Location` and an `ETag`. `DELETE <Location>` ends the session; `PATCH` answers 405
(aiortc gathers all candidates before answering, so there is no trickle ICE or ICE restart);
`OPTIONS` answers CORS preflight. Decoding happens in aiortc's decoder thread; our receive tasks
only move decoded frames into the Source (dropping the oldest when the decoder runs ahead of us).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtcpSrPacket

from .config import Config, IceServer
from .dtls import install_dtls_interop, register_h264_profiles
from .errors import ApiError
from .ice import restrict_host_addresses, stop_consent_freshness
from .productions import ProductionRuntime
from .sdp_check import OfferError, check_offer
from .senderclock import SenderClock
from .source import Source
from .store import ID_RE

log = logging.getLogger(__name__)

SDP_TYPE = "application/sdp"
TASK_END_TIMEOUT_S = 2.0  # receive tasks get this long to end after their session closes


@dataclass
class WhipSession:
    id: str
    runtime: ProductionRuntime
    source: Source
    pc: RTCPeerConnection
    etag: str
    created_at: float = field(default_factory=time.time)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    tracks: list[MediaStreamTrack] = field(default_factory=list)
    closed: bool = False
    ending: bool = False

    @property
    def location(self) -> str:
        return f"/whip/{self.runtime.id}/{self.source.id}/{self.id}"

    async def close(self) -> None:
        """Close the peer connection, then let the receive tasks end by themselves.

        They are not cancelled while they wait for a frame: a task cancelled there keeps its
        frame (and with it this session, its Source, the Source's last video frames and audio
        resampler, a filter graph with threads of its own) in a reference cycle through the
        CancelledError's traceback and asyncio's queue getter — freed only by a full cyclic
        GC, which can take hours on a server. Instead each track gets the end-of-stream
        marker (None, as aiortc's decoder thread sends when its receiver stops), so the tasks
        return and everything is freed by reference counting when the source is replaced."""
        if self.closed:
            return
        self.closed = True
        self.source.set_state("ended")
        current = asyncio.current_task()
        try:
            # shielded: a caller cancelled while aiortc closes must not cancel aiortc's own
            # close future (aiortc then fails its close task with InvalidStateError)
            with contextlib.suppress(Exception):
                await asyncio.shield(self.pc.close())
            for track in self.tracks:
                queue = getattr(track, "_queue", None)
                if queue is not None:
                    queue.put_nowait(None)
            pending = [t for t in self.tasks if t is not current and not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=TASK_END_TIMEOUT_S)
        finally:
            for t in self.tasks:
                if t is not current and not t.done():
                    t.cancel()
            self.tasks.clear()
            self.tracks.clear()


class WhipService:
    """Owns the live WHIP sessions of this server."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sessions: dict[str, WhipSession] = {}
        register_h264_profiles()

    def rtc_configuration(self) -> RTCConfiguration:
        servers = [RTCIceServer(urls=list(s.urls), username=s.username or None,
                                credential=s.credential or None)
                   for s in self.config.ingest.ice_servers]
        return RTCConfiguration(iceServers=servers)

    async def open_session(self, runtime: ProductionRuntime, source_id: str,
                           offer_sdp: str) -> tuple[WhipSession, str]:
        try:
            summary = check_offer(offer_sdp)
        except OfferError as exc:
            raise ApiError(400, str(exc), error="bad_sdp") from None
        existing = runtime.sources.get(source_id)
        replacing = existing is not None and existing.state != "ended"
        if not replacing and len(runtime.active_sources()) >= runtime.production.max_sources:
            raise ApiError(503, f"production {runtime.id!r} already has "
                                f"{runtime.production.max_sources} sources (its limit)",
                           headers={"Retry-After": "10"})

        source = runtime.new_source(source_id, "whip")
        pc = RTCPeerConnection(self.rtc_configuration())
        install_dtls_interop(pc)
        session = WhipSession(id=secrets.token_urlsafe(16), runtime=runtime, source=source,
                              pc=pc, etag=f'"{secrets.token_hex(8)}"')
        # closing the source (replaced, deleted, production ended) ends its session
        source.on_close = lambda: self._end(session, "source closed by the server")
        source.info["session"] = session.id

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            session.tracks.append(track)
            clock = SenderClock(90000 if track.kind == "video" else 48000)
            for t in pc.getTransceivers():
                if t.receiver.track is track:
                    watch_sender_reports(t.receiver, clock)
                    clock.rtp_origin = rtp_origin_of(t.receiver)
                    if track.kind == "audio":
                        set_audio_prefetch(t.receiver, self.config.ingest.audio_jitter_packets)
            session.tasks.append(runtime.tasks.spawn(
                self._consume(session, track, clock), f"{source_id}:{track.kind}"))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            log.info("whip %s/%s connection %s", runtime.id, source_id, state)
            if state in ("failed", "closed"):
                await self._end(session, f"connection {state}")

        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            restrict_host_addresses(pc, self.config.ingest.ice_host_addresses)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as exc:
            await session.close()
            raise ApiError(400, f"cannot negotiate this offer: {exc}", error="bad_sdp") from None

        for t in pc.getTransceivers():
            codecs = getattr(t, "_codecs", None) or []
            if codecs:
                name = codecs[0].mimeType.split("/", 1)[1]
                if t.kind == "video":
                    source.video_codec = name
                else:
                    source.audio_codec = name
        if source.video_codec is None and summary.video_codecs:
            source.video_codec = summary.video_codecs[0]

        try:
            await runtime.add_source(source, replace=True)
        except ApiError:
            await session.close()
            raise
        self.sessions[session.id] = session
        runtime.pollers[source_id] = lambda: self._poll_stats(session)
        runtime.tasks.spawn(self._connect_watchdog(session), f"{source_id}:watchdog")
        return session, pc.localDescription.sdp

    async def _connect_watchdog(self, session: WhipSession) -> None:
        """Closes a session that does not connect in time, or that later stops delivering
        media (instead of ICE consent freshness, which some publishers do not answer)."""
        ingest = self.config.ingest
        t0 = time.monotonic()
        while session.pc.connectionState != "connected":
            if session.closed:
                return
            if time.monotonic() - t0 > ingest.connect_timeout_s:
                await self._end(session, f"not connected within {ingest.connect_timeout_s:g} s "
                                         "(ICE/DTLS)")
                return
            await asyncio.sleep(0.1)
        stop_consent_freshness(session.pc)
        connected = time.time()
        idle = ingest.session_idle_timeout_s
        while not session.closed:
            await asyncio.sleep(min(1.0, idle / 4))
            last = session.source.last_media_at or connected
            if time.time() - last > idle:
                await self._end(session, f"no media for {idle:g} s")
                return

    async def _end(self, session: WhipSession, reason: str) -> None:
        if session.closed or session.ending:
            return
        session.ending = True  # closing the source calls back here: that echo is ignored
        log.info("whip %s/%s ended: %s", session.runtime.id, session.source.id, reason)
        if reason and session.source.state == "connecting":
            session.source.error = reason
        session.source.info["end_reason"] = reason
        self.sessions.pop(session.id, None)
        await session.runtime.drop_if_current(session.source)
        await session.close()

    async def _consume(self, session: WhipSession, track: MediaStreamTrack,
                       clock: SenderClock) -> None:
        source = session.source
        limit = self.config.ingest.video_queue_frames
        backlog: asyncio.Queue[Any] | None = getattr(track, "_queue", None)
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    # aiortc's decoder hands frames over through an unbounded queue; if we ever
                    # fall behind, keep the newest `limit` frames and count the rest as dropped.
                    while backlog is not None and backlog.qsize() > limit:
                        stale = backlog.get_nowait()
                        if stale is None:
                            backlog.put_nowait(None)
                            break
                        source.count_dropped()
                    now = time.time()
                    captured = clock.capture_time_of_pts(frame.pts)
                    source.push_video(frame, arrived=now, decoded=now, captured=captured)
                else:
                    source.push_audio(frame)
        except MediaStreamError:
            pass
        except asyncio.CancelledError:
            raise
        finally:
            if track.kind == "video" and not session.closed:
                await self._end(session, "publisher stopped sending")

    async def _poll_stats(self, session: WhipSession) -> None:
        report = await session.pc.getStats()
        net: dict[str, Any] = {}
        total_bytes = 0
        for st in report.values():
            if st.type == "inbound-rtp":
                rate = 90000 if st.kind == "video" else 48000
                net[f"{st.kind}_packets_received"] = st.packetsReceived
                net[f"{st.kind}_packets_lost"] = st.packetsLost
                net[f"{st.kind}_jitter_ms"] = round(st.jitter * 1000 / rate, 2)
                lost, recv = st.packetsLost, st.packetsReceived
                net[f"{st.kind}_loss_pct"] = round(100 * lost / (lost + recv), 2) \
                    if lost + recv > 0 else 0.0
            elif st.type == "remote-inbound-rtp" and getattr(st, "roundTripTime", None):
                net["rtt_ms"] = round(st.roundTripTime * 1000, 1)
            elif st.type == "transport":
                total_bytes += st.bytesReceived
        net.setdefault("rtt_ms", None)
        session.source.network = net
        session.source.bytes_received = total_bytes

    async def close_all(self) -> None:
        await asyncio.gather(*(s.close() for s in list(self.sessions.values())),
                             return_exceptions=True)
        self.sessions.clear()

    # --- HTTP -----------------------------------------------------------------------------
    def link_headers(self) -> list[str]:
        return [ice_link(s) for s in self.config.ingest.ice_servers]


def watch_sender_reports(receiver: RTCRtpReceiver, clock: SenderClock) -> None:
    """Feed the RTCP sender reports one receiver gets into `clock` (aiortc keeps only the
    SR's wall clock, not its RTP timestamp, so its RTCP handler is wrapped for this receiver)."""
    handle = receiver._handle_rtcp_packet

    async def on_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            clock.on_sender_report(packet.sender_info.ntp_timestamp,
                                   packet.sender_info.rtp_timestamp)
        await handle(packet)

    receiver._handle_rtcp_packet = on_rtcp  # type: ignore[method-assign]


def set_audio_prefetch(receiver: RTCRtpReceiver, packets: int) -> None:
    """Packets aiortc's audio jitter buffer holds before it releases any (its default: 4)."""
    jb = getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
    if jb is not None and hasattr(jb, "_prefetch"):
        jb._prefetch = packets


def rtp_origin_of(receiver: RTCRtpReceiver) -> Callable[[], int | None]:
    """aiortc rebases frame pts to the stream's first RTP timestamp; this reads that origin."""
    mapper = getattr(receiver, "_RTCRtpReceiver__timestamp_mapper", None)
    return lambda: getattr(mapper, "_origin", None)


def ice_link(server: IceServer) -> str:
    parts = [f'<{url}>; rel="ice-server"' for url in server.urls]
    if server.username:
        extra = (f'; username="{server.username}"; credential="{server.credential}"; '
                 f'credential-type="password"')
        parts = [p + extra if p.startswith(("<turn:", "<turns:")) else p for p in parts]
    return ", ".join(parts)


def whip_cors_headers(request: web.Request, config: Config) -> dict[str, str]:
    origin = request.headers.get("Origin")
    allowed = config.server.cors_origins
    if origin and ("*" in allowed or origin in allowed):
        return {
            "Access-Control-Allow-Origin": origin if "*" not in allowed else "*",
            "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Patch, Retry-After",
        }
    return {}


async def read_limited_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"body of {request.content_length} bytes is over the "
                            f"{limit}-byte limit")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise ApiError(413, f"body is over the {limit}-byte limit")
    return body


def check_source_id(source_id: str) -> None:
    if not ID_RE.match(source_id):
        raise ApiError(400, "source id must be 1-64 letters, digits, '-' or '_' "
                            "(starting with a letter or digit)", field="source")
