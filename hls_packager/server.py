"""LL-HLS output of a production: the `Packager` (encoder threads -> parts) and HTTP routes.

Wiring (what the lead calls)::

    registry = HlsRegistry(data_dir="data")            # one per process
    register_hls_routes(app, registry)                  # GET /hls/{production}/...
    packager = registry.create("prod1", fps=30)         # HlsConfig() defaults, DiskStore
    packager.start()                                    # on the event loop (or start(loop=...))
    packager.push(program_frame)                        # from the switcher clock thread
    await packager.aclose()                             # or packager.stop(): live -> replay

Threads: `push` only appends to each rendition's bounded queue. Each rendition's encoder
thread encodes, cuts parts (`Segmenter`), writes complete segments to the store and hands
the parts to the event loop with ``loop.call_soon_threadsafe``; there the rendition's
`LiveWindow` is updated and its `serving.Signal` fired, which wakes blocked playlist and part
requests all at once (waiting requests cost nothing: no polling). Chunks of the part being
produced (see `segmenter.Chunk`) fire a second signal, so only requests streaming the
preload-hinted part wake per chunk, not every blocked playlist request.

What each HLS request gets is decided in `serving.py` (shared with the edge listener,
`edge.py`); errors use the project's one JSON shape ``{"error": "<code>", "detail": "<text>"}``
(+ ``"field"`` naming the query parameter at fault).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from hls_packager.config import HlsConfig, RenditionConfig, Timing
from hls_packager.encoder import EncodedFrame, EncoderWorker, RenditionEncoder
from hls_packager.fmp4 import AudioTrack, VideoTrack, init_segment
from hls_packager.playlist import (
    MediaPlaylist,
    PartEntry,
    RenditionReport,
    SegmentEntry,
    ServerControl,
    Variant,
    render_media_playlist,
    render_multivariant,
    target_duration_for,
)
from hls_packager.segmenter import (
    AUDIO_TIMESCALE,
    DEFAULT_CHUNK_FRAMES,
    Chunk,
    LiveWindow,
    Part,
    Segment,
    Segmenter,
    video_timescale,
)
from hls_packager.serving import (
    CACHE_MEDIA,
    CORS_HEADERS,
    MEDIA_CONTENT_TYPE,
    Reply,
    Signal,
    plan,
    settle,
)
from hls_packager.store import (
    DirectoryPublisher,
    DiskStore,
    HlsStore,
    MemoryStore,
    SegmentRecord,
)
from switcher.program import ProgramFrame

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def media_playlist_uri(rendition: str) -> str:
    return f"{rendition}/index.m3u8"


def segment_uri(msn: int) -> str:
    return f"seg{msn}.m4s"


def part_uri(msn: int, index: int) -> str:
    return f"part{msn}.{index}.m4s"


def init_uri(init_id: int) -> str:
    return f"init{init_id}.mp4"


# --------------------------------------------------------------------------- rendition state


@dataclass
class RenditionInfo:
    """What the multivariant playlist needs; persisted in meta.json for the replay."""

    config: RenditionConfig
    codecs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.config.name


class RenditionOutput:
    """Event-loop-owned state of one rendition: live window, Condition, replay view."""

    def __init__(self, info: RenditionInfo, timing: Timing, window_segments: int,
                 store: HlsStore) -> None:
        self.info = info
        self.name = info.name
        self.timing = timing
        self.store = store
        self.window = LiveWindow(window_segments)
        self.server_control = ServerControl.for_targets(timing.target_duration,
                                                        timing.part_target_s)
        self.changed = Signal()  # parts, segments, end: blocked playlists and parts
        self.chunk_signal = Signal()  # + chunks: requests streaming a part
        # Chunks of the part being produced: (msn, index) -> the part's bytes so far, in pieces.
        self.chunks: dict[tuple[int, int], list[bytes]] = {}
        self.version = 0  # bumped on every change of the window (playlist cache key)
        self.ended = False
        self.latencies: deque[float] = deque(maxlen=20000)  # capture -> part fetchable, s
        # Latency observers (called on the loop): marks of each published part's frames, and
        # seconds from a part's publication to a response carrying it being written.
        self.on_part: list[Callable[[str, tuple[dict[str, float], ...]], None]] = []
        self.on_delivery: list[Callable[[str, float], None]] = []
        self._clients: dict[tuple[str, str], float] = {}  # (address, user agent) -> last seen

    VIEWER_WINDOW_S = 10.0

    def seen_client(self, address: str, agent: str) -> None:
        now = time.monotonic()
        self._clients[(address, agent)] = now
        if len(self._clients) > 50_000:  # bounded: forget the stale ones
            self._clients = {k: t for k, t in self._clients.items()
                             if now - t <= self.VIEWER_WINDOW_S}

    def viewers(self) -> int:
        """Distinct clients (address + user agent) that loaded this playlist lately."""
        now = time.monotonic()
        return sum(1 for t in self._clients.values() if now - t <= self.VIEWER_WINDOW_S)

    # -- called on the loop (via call_soon_threadsafe) ---------------------------------
    def publish(self, events: list[Chunk | Part | Segment]) -> None:
        now = time.time()
        changed = False
        for ev in events:
            if isinstance(ev, Chunk):
                self.chunks.setdefault((ev.msn, ev.index), []).append(ev.data)
                for m in ev.marks:  # fetchable from here on, by a client of the hinted part
                    m.setdefault("chunked", now)
                continue
            changed = True
            if isinstance(ev, Part):
                for m in ev.marks:
                    m["published"] = now
                    t0 = m.get("captured", m.get("tick"))
                    if t0 is not None:
                        self.latencies.append(now - t0)
                for cb in self.on_part:
                    cb(self.name, ev.marks)
                self.chunks.pop((ev.msn, ev.index), None)
                self.window.add_part(ev)
            else:
                self.window.add_segment(ev)
        if changed:
            self.version += 1
        self.notify(parts=changed)

    def delivered(self, part: Part, requested: float | None = None) -> None:
        """A response carrying `part` has been written (for the delivery-latency figure):
        the time from when the server could answer — the part's publication, or the request
        if it came later (a player catching up) — to the write."""
        if self.on_delivery and part.marks:
            published = part.marks[-1].get("published")
            if published is not None:
                lag = time.time() - max(published, requested or 0.0)
                for cb in self.on_delivery:
                    cb(self.name, lag)

    def set_ended(self, ended: bool) -> None:
        self.ended = ended
        self.window.ended = ended
        self.version += 1
        if ended:
            self.chunks.clear()
        self.notify()

    def notify(self, parts: bool = True) -> None:
        """Wake the requests waiting for a change (on the loop)."""
        if parts:
            self.changed.fire()
        self.chunk_signal.fire()

    async def wait(self, predicate: Callable[[], bool], hold_s: float,
                   chunks: bool = False) -> bool:
        """Wait until `predicate()` (checked on every change; with `chunks`, on every chunk
        too) or `hold_s` passed; returns the predicate's last value."""
        signal = self.chunk_signal if chunks else self.changed
        deadline = time.monotonic() + hold_s
        while not predicate():
            if not await signal.wait(deadline - time.monotonic()):
                return predicate()
        return True

    def pending_chunks(self, msn: int, index: int) -> list[bytes]:
        return self.chunks.get((msn, index), [])

    # -- playlists ----------------------------------------------------------------------
    def live_playlist(self, reports: tuple[RenditionReport, ...] = ()) -> MediaPlaylist:
        return build_live_playlist(self.window, self.timing, self.server_control, reports)

    def replay_playlist(self) -> MediaPlaylist:
        recs = self.store.segments(self.name)
        segs = tuple(
            SegmentEntry(r.msn, segment_uri(r.msn), r.duration, r.program_date_time,
                         r.discontinuity and i > 0, init_uri(r.init_id))
            for i, r in enumerate(recs)
        )
        return MediaPlaylist(
            target_duration=target_duration_for([r.duration for r in recs],
                                                self.timing.target_duration),
            media_sequence=recs[0].msn if recs else 0,
            segments=segs,
            ended=True,
            vod=True,
        )

    def report(self) -> RenditionReport | None:
        lp = self.window.last_part
        if lp is None:
            return None
        return RenditionReport(f"../{media_playlist_uri(self.name)}", lp[0], lp[1])

    def variant(self, fps: int) -> Variant:
        cfg = self.info.config
        peak = cfg.peak_video_bitrate + cfg.audio_bitrate
        avg = cfg.video_bitrate + cfg.audio_bitrate
        if self.ended:
            recs = self.store.segments(self.name)
            rates = [r.size * 8 / r.duration for r in recs if r.duration > 0.5]
            if rates:
                peak, avg = max(rates), sum(rates) / len(rates)
        return Variant(media_playlist_uri(self.name), int(peak * 1.1), int(avg), cfg.width,
                       cfg.height, fps, self.info.codecs)


def build_live_playlist(w: LiveWindow, timing: Timing, server_control: ServerControl,
                        reports: tuple[RenditionReport, ...] = ()) -> MediaPlaylist:
    """The live media playlist view of a window (pure)."""
    segs = tuple(
        SegmentEntry(
            s.msn, segment_uri(s.msn), s.duration, s.program_date_time, s.discontinuity,
            init_uri(s.init_id),
            tuple(_part_entry(p) for p in s.parts) if w.parts_listed(s.msn) else (),
        )
        for s in w.segments
    )
    pending = None
    if w.current:
        p0 = w.current[0]
        pending = SegmentEntry(p0.msn, "", 0.0, p0.program_date_time, p0.discontinuity,
                               init_uri(p0.init_id), tuple(_part_entry(p) for p in w.current))
    nxt = w.next_part
    return MediaPlaylist(
        target_duration=timing.target_duration,
        media_sequence=w.media_sequence,
        segments=segs,
        part_target=timing.part_target_s,
        server_control=server_control,
        discontinuity_sequence=w.discontinuity_sequence,
        pending=pending,
        preload_hint=part_uri(*nxt) if nxt else None,
        rendition_reports=reports,
    )


def _part_entry(p: Part) -> PartEntry:
    return PartEntry(part_uri(p.msn, p.index), p.duration, p.independent)


# --------------------------------------------------------------------------- packager


@dataclass
class _Pipeline:
    """Encoder-thread side of one rendition."""

    output: RenditionOutput
    encoder: RenditionEncoder
    segmenter: Segmenter
    worker: EncoderWorker
    init_id: int
    restarts: int = 0
    dir_window: LiveWindow | None = None
    dir_parts: set[str] = field(default_factory=set)


class Packager:
    """HLS output of one production: one encoder thread per rendition, live -> replay."""

    def __init__(self, production: str, fps: int, config: HlsConfig | None = None,
                 store: HlsStore | None = None, output_dir: str | Path | None = None,
                 chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> None:
        if not _NAME_RE.match(production):
            raise ValueError(f"production: {production!r} must match [A-Za-z0-9_-]{{1,64}}")
        self.production = production
        # Video frames per CMAF chunk (streamed while a part is produced); 0 = one per part.
        self.chunk_frames = chunk_frames
        # (rendition, skip mode) -> (versions of every rendition, text): thousands of clients
        # blocked on one playlist get the same text, rendered once per change.
        self._playlist_cache: dict[tuple[str, str], tuple[tuple[int, ...], bytes]] = {}
        self.fps = fps
        self.config = config or HlsConfig()
        self.timing = Timing.from_config(self.config, fps)
        self.store: HlsStore = store if store is not None else MemoryStore()
        out_dir = output_dir or self.config.output_dir
        self.publisher = DirectoryPublisher(out_dir) if out_dir else None
        self.outputs: dict[str, RenditionOutput] = {
            r.name: RenditionOutput(RenditionInfo(r), self.timing, self.config.window_segments,
                                    self.store)
            for r in self.config.renditions
        }
        self.state = "idle"  # idle -> live -> ended (-> live again: a new run)
        self.runs = 0
        self._pipelines: dict[str, _Pipeline] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._origin: int | None = None  # first frame index of the current run
        self._next_msn = 0
        meta = self.store.get_meta()
        if meta:
            self.runs = int(meta.get("runs", 0))
            for name, out in self.outputs.items():
                recs = self.store.segments(name)
                if recs:
                    self._next_msn = max(self._next_msn, recs[-1].msn + 1)
                codecs = meta.get("codecs", {}).get(name)
                if codecs:
                    out.info.codecs = tuple(codecs)

    # ------------------------------------------------------------------ lifecycle
    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Open the encoders and start their threads; a start after stop() is a new run
        (EXT-X-DISCONTINUITY, new init segment). Call on the loop or pass it."""
        if self.state == "live":
            return
        self._loop = loop or asyncio.get_running_loop()
        init_id = self.runs
        discontinuity = self._next_msn > 0
        for r in self.config.renditions:
            self._pipelines[r.name] = self._make_pipeline(r, init_id, discontinuity,
                                                          self._next_msn, 1)
        self.runs += 1
        self._origin = None
        self.state = "live"
        self._save_meta(ended=False)
        for name, p in self._pipelines.items():
            self._loop.call_soon_threadsafe(self.outputs[name].set_ended, False)
            p.worker.start()
        if self.publisher:
            self.publisher.write(f"{self.production}/index.m3u8", self.multivariant_playlist())

    def _make_pipeline(self, r: RenditionConfig, init_id: int, discontinuity: bool,
                       min_msn: int, fragment_seq: int) -> _Pipeline:
        out = self.outputs[r.name]
        enc = RenditionEncoder(r, self.fps, self.timing.segment_frames, self.config.preset)
        out.info.codecs = (enc.avc.codec_string, enc.aac.codec_string)
        init = init_segment(
            VideoTrack(r.width, r.height, video_timescale(self.fps), enc.avc),
            AudioTrack(AUDIO_TIMESCALE, enc.aac, r.audio_bitrate),
        )
        self.store.put_init(r.name, init_id, init)
        seg = Segmenter(self.timing, self._next_msn, self._origin or 0, discontinuity, init_id,
                        fragment_seq, min_msn, self.chunk_frames)
        enc.origin = self._origin or 0
        pipe = _Pipeline(out, enc, seg, None, init_id)  # type: ignore[arg-type]
        pipe.worker = EncoderWorker(enc, lambda ef, p=pipe: self._on_frame(p, ef),
                                    self.config.queue_frames,
                                    name=f"hls-{self.production}-{r.name}")
        if self.publisher:
            pipe.dir_window = LiveWindow(self.config.window_segments)
            self.publisher.write(f"{self.production}/{r.name}/{init_uri(init_id)}", init)
        return pipe

    def push(self, frame: ProgramFrame) -> None:
        """Hand one program frame to every rendition. Never blocks; thread-safe."""
        if self.state != "live":
            return
        with self._lock:
            if self._origin is None:
                # One offset per run for all renditions: the same frame -> the same msn.
                self._origin = frame.index
                for p in self._pipelines.values():
                    p.segmenter.origin = p.encoder.origin = frame.index
                    p.segmenter.base_msn = self._next_msn
            for name, p in list(self._pipelines.items()):
                if p.worker.failed is not None:
                    self._restart(name, p)
                self._pipelines[name].worker.push(frame)

    def _restart(self, name: str, old: _Pipeline) -> None:
        """An encoder thread died: close what it produced, start a fresh encoder (new init,
        EXT-X-DISCONTINUITY) from the next segment on."""
        log.warning("%s/%s: restarting encoder after %r", self.production, name,
                    old.worker.failed)
        self._emit(old, old.segmenter.add(EncodedFrame(0, b"", False, [], last=True)))
        last = old.segmenter.last_msn
        next_msn = (last if last is not None else self._next_msn - 1) + 1
        self.runs += 1
        r = old.output.info.config
        pipe = self._make_pipeline(r, self.runs - 1, True, next_msn, old.segmenter.fragment_seq)
        pipe.restarts = old.restarts + 1
        self._pipelines[name] = pipe
        self._save_meta(ended=False)
        pipe.worker.start()

    def stop(self) -> None:
        """Flush the encoders (the last segment may be short) and turn the output into the
        replay (VOD over every segment). Blocks for the flush (~ a few frames' encode time)."""
        if self.state != "live":
            return
        self.state = "stopping"
        for p in self._pipelines.values():
            p.worker.stop()
        last = [p.segmenter.last_msn for p in self._pipelines.values()
                if p.segmenter.last_msn is not None]
        self._next_msn = max([self._next_msn - 1, *last]) + 1
        self.state = "ended"
        self._save_meta(ended=True)
        for name in self._pipelines:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self.outputs[name].set_ended, True)
        if self.publisher:
            for name, out in self.outputs.items():
                self.publisher.write(f"{self.production}/{name}/index.m3u8",
                                     render_media_playlist(out.replay_playlist()))

    async def aclose(self) -> None:
        """`stop()` off the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    # ------------------------------------------------------------------ encoder thread
    def _on_frame(self, pipe: _Pipeline, ef: EncodedFrame) -> None:
        self._emit(pipe, pipe.segmenter.add(ef))

    def _emit(self, pipe: _Pipeline, events: list[Chunk | Part | Segment]) -> None:
        if not events:
            return
        name = pipe.output.name
        for ev in events:
            if isinstance(ev, Segment):
                self.store.put_segment(name, SegmentRecord(
                    ev.msn, ev.duration, ev.program_date_time, ev.discontinuity, ev.init_id,
                    ev.size), ev.data)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(pipe.output.publish, events)
        if self.publisher and pipe.dir_window is not None:
            self._publish_files(pipe, events)

    def _publish_files(self, pipe: _Pipeline, events: list[Chunk | Part | Segment]) -> None:
        assert self.publisher is not None and pipe.dir_window is not None
        base = f"{self.production}/{pipe.output.name}"
        w = pipe.dir_window
        events = [ev for ev in events if not isinstance(ev, Chunk)]
        if not events:
            return
        for ev in events:
            if isinstance(ev, Part):
                name = part_uri(ev.msn, ev.index)
                self.publisher.write(f"{base}/{name}", ev.data)
                pipe.dir_parts.add(name)
                w.add_part(ev)
            else:
                self.publisher.write(f"{base}/{segment_uri(ev.msn)}", ev.data)
                w.add_segment(ev)
        text = render_media_playlist(
            build_live_playlist(w, self.timing, pipe.output.server_control))
        self.publisher.write(f"{base}/index.m3u8", text)
        listed = {part_uri(p.msn, p.index) for p in w.current} | {
            part_uri(p.msn, p.index) for s in w.segments if w.parts_listed(s.msn) for p in s.parts}
        for gone in pipe.dir_parts - listed:
            self.publisher.remove(f"{base}/{gone}")
        pipe.dir_parts &= listed

    # ------------------------------------------------------------------ views
    def _save_meta(self, ended: bool) -> None:
        self.store.put_meta({
            "production": self.production,
            "fps": self.fps,
            "config": {
                "part_target_s": self.config.part_target_s,
                "segment_target_s": self.config.segment_target_s,
                "window_segments": self.config.window_segments,
                "preset": self.config.preset,
                "renditions": [asdict(o.info.config) for o in self.outputs.values()],
            },
            "codecs": {n: list(o.info.codecs) for n, o in self.outputs.items()},
            "runs": self.runs,
            "ended": ended,
        })

    @classmethod
    def replay(cls, production: str, store: HlsStore) -> Packager | None:
        """A stopped packager over what a store holds (server restart serves the replay)."""
        meta = store.get_meta()
        if not meta:
            return None
        try:
            cfg = HlsConfig.from_dict(meta["config"])
            p = cls(production, int(meta["fps"]), cfg, store)
        except (KeyError, ValueError, TypeError) as e:
            log.warning("%s: unreadable HLS meta: %s", production, e)
            return None
        p.state = "ended"
        for out in p.outputs.values():
            out.ended = out.window.ended = True
        return p

    def multivariant_playlist(self) -> str:
        return render_multivariant([o.variant(self.fps) for o in self.outputs.values()])

    def media_playlist(self, rendition: str, skip: bool | str = False) -> str:
        """Live (or replay) media playlist; `skip`: ``"YES"``/True or ``"v2"`` = delta update
        (ignored once the playlist has EXT-X-ENDLIST, RFC 8216bis 6.2.5.1)."""
        return self.media_playlist_bytes(rendition, skip).decode()

    def media_playlist_bytes(self, rendition: str, skip: bool | str = False) -> bytes:
        """`media_playlist` as UTF-8, rendered once per change of any rendition."""
        out = self.outputs[rendition]
        mode = "v2" if skip == "v2" else "YES" if skip else ""
        key = (rendition, "" if out.ended else mode)
        versions = tuple(o.version for o in self.outputs.values())
        cached = self._playlist_cache.get(key)
        if cached is not None and cached[0] == versions:
            return cached[1]
        if out.ended:
            text = render_media_playlist(out.replay_playlist())
        else:
            reports = tuple(r for o in self.outputs.values() if o is not out
                            for r in [o.report()] if r is not None)
            text = render_media_playlist(out.live_playlist(reports), skip=bool(mode),
                                         skip_dateranges=mode == "v2")
        body = text.encode()
        self._playlist_cache[key] = (versions, body)
        return body

    def stats(self) -> dict[str, Any]:
        out = {}
        for name, o in self.outputs.items():
            p = self._pipelines.get(name)
            lat = sorted(o.latencies)
            out[name] = {
                "encoded": p.worker.encoded if p else 0,
                "dropped": p.worker.dropped if p else 0,
                "restarts": p.restarts if p else 0,
                "last_part": o.window.last_part,
                "latency_p50_s": lat[len(lat) // 2] if lat else None,
                "latency_p95_s": lat[int(len(lat) * 0.95)] if lat else None,
            }
        return {"state": self.state, "renditions": out}


class HlsRegistry:
    """The productions whose HLS output is served: live packagers and stored replays."""

    def __init__(self, data_dir: str | Path | None = None, config: HlsConfig | None = None):
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.config = config or HlsConfig()
        self._packagers: dict[str, Packager] = {}

    def _store(self, production: str) -> HlsStore:
        if self.data_dir is None:
            return MemoryStore()
        return DiskStore(self.data_dir / "hls" / production)

    def create(self, production: str, fps: int, config: HlsConfig | None = None) -> Packager:
        """A new (not yet started) packager; replaces a stored replay of the same production
        (its segments continue the numbering after an EXT-X-DISCONTINUITY)."""
        if production in self._packagers and self._packagers[production].state == "live":
            raise ValueError(f"production {production!r} already has a live packager")
        p = Packager(production, fps, config or self.config, self._store(production))
        self._packagers[production] = p
        return p

    def add(self, packager: Packager) -> None:
        self._packagers[packager.production] = packager

    def remove(self, production: str) -> Packager | None:
        return self._packagers.pop(production, None)

    def get(self, production: str) -> Packager | None:
        p = self._packagers.get(production)
        if p is None and self.data_dir is not None and _NAME_RE.match(production):
            if (self.data_dir / "hls" / production / "meta.json").exists():
                p = Packager.replay(production, self._store(production))
                if p is not None:
                    self._packagers[production] = p
        return p

    async def close(self) -> None:
        for p in list(self._packagers.values()):
            await p.aclose()


# --------------------------------------------------------------------------- HTTP

HLS_REGISTRY = web.AppKey("hls_registry", HlsRegistry)


def register_hls_routes(app: web.Application, registry: HlsRegistry) -> None:
    """GET /hls/{production}/index.m3u8 and /hls/{production}/{rendition}/{file} on an aiohttp
    app (the answers come from `serving.plan`; `edge.HlsEdge` serves the same on its own
    listener)."""
    app[HLS_REGISTRY] = registry
    app.router.add_get("/hls/{production}/index.m3u8", _hls_get)
    app.router.add_get("/hls/{production}/{rendition}/{name}", _hls_get)

    async def _close(app: web.Application):
        yield
        await app[HLS_REGISTRY].close()

    app.cleanup_ctx.append(_close)


def _response(reply: Reply) -> web.Response:
    resp = web.Response(status=reply.status, body=reply.body, headers=reply.headers())
    resp.headers["Content-Type"] = reply.content_type_header
    if reply.delivered is not None:
        reply.delivered()
    return resp


async def _hls_get(request: web.Request) -> web.StreamResponse:
    mi = request.match_info
    action = plan(request.app[HLS_REGISTRY], mi["production"], mi.get("rendition"),
                  mi.get("name", "index.m3u8"), request.query.items(),
                  (request.remote or "?", request.headers.get("User-Agent", "")))
    result = await settle(action)
    if isinstance(result, Reply):
        return _response(result)
    stream = web.StreamResponse(headers={**CORS_HEADERS, "Cache-Control": CACHE_MEDIA})
    stream.content_type = MEDIA_CONTENT_TYPE
    stream.enable_chunked_encoding()

    async def start() -> None:
        await stream.prepare(request)

    done = await result.run(start, stream.write)
    if isinstance(done, Reply):
        return _response(done)
    if done:
        await stream.write_eof()
    elif request.transport is not None:
        request.transport.close()  # cut: the client must not take a short part for whole
    return stream
