"""An LL-HLS client that behaves like a low-latency player and reads the stamps it decodes.

It fetches the multivariant playlist, picks a rendition (the lowest bandwidth one unless
named), joins at the newest independent part, then loops:
  - the preload-hinted part is requested at once; the server holds the request and streams the
    part's CMAF chunks (moof+mdat) as they are produced, and each chunk is decoded the moment
    its bytes are complete;
  - at the same time a blocking playlist reload (`_HLS_msn`/`_HLS_part` of that part) returns
    when the part is published, giving the next hint;
  - parts listed that it does not have yet (a hint that failed, a hiccup) are fetched whole.
With fetch="listed" it never requests a hinted part: it waits for each part to be listed
(blocking reload) and then fetches it whole, like players that ignore preload hints.
Every chunk is demuxed with PyAV (init + fragment) and decoded by ONE persistent decoder per
track in one worker thread (parts after the first are P-frames referencing earlier ones).
For each decoded video frame it records a `FrameSample` (capture ms from the stamp or None,
wall time its bytes arrived, wall time it was decoded, media pts); beep onsets of the audio
track are recorded in media seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import time
from dataclasses import dataclass, field

import aiohttp

from . import hls, stamp

log = logging.getLogger(__name__)


class WatchError(Exception):
    """The HLS output cannot be watched (no output, not a playlist, no such rendition)."""


@dataclass(frozen=True)
class FrameSample:
    capture_ms: int | None  # from the stamp; None when the frame carries no readable stamp
    received: float  # wall clock (s) when the bytes holding the frame had arrived
    decoded: float  # wall clock (s) when the frame was decoded
    pts: float  # media time (s)
    part: tuple[int, int]  # (msn, part index)
    joined: bool = False  # decoded while catching up at join time (not live pace)


def split_fragments(buf: bytearray) -> list[bytes]:
    """Take complete moof+mdat pairs (and any boxes before them) off the front of `buf`."""
    out = []
    pos = start = 0
    seen_moof = False
    while len(buf) - pos >= 8:
        size = int.from_bytes(buf[pos:pos + 4], "big")
        kind = bytes(buf[pos + 4:pos + 8])
        if size == 1:
            if len(buf) - pos < 16:
                break
            size = int.from_bytes(buf[pos + 8:pos + 16], "big")
        if size < 8:
            raise ValueError(f"bad MP4 box size {size} ({kind!r})")
        if len(buf) - pos < size:
            break
        pos += size
        if kind == b"moof":
            seen_moof = True
        elif kind == b"mdat" and seen_moof:
            out.append(bytes(buf[start:pos]))
            start, seen_moof = pos, False
    del buf[:start]
    return out


class Decoder:
    """Demux init + fragment with PyAV; decode with persistent decoders (one thread only)."""

    def __init__(self, region: stamp.Region | None = None) -> None:
        self.region = region
        self.init: bytes | None = None
        self.vdec = self.adec = None
        self.vtb = self.atb = None
        self.rate = 48000
        self.onsets = stamp.OnsetDetector()
        self.frames = 0
        self.audio_samples = 0
        self.errors = 0

    def set_init(self, init: bytes) -> None:
        import av

        self.init = init
        with av.open(io.BytesIO(init), format="mp4") as c:
            v = next((s for s in c.streams if s.type == "video"), None)
            a = next((s for s in c.streams if s.type == "audio"), None)
            if v is None:
                raise WatchError("the rendition has no video track")
            self.vdec = av.CodecContext.create(v.codec_context.name, "r")
            self.vdec.extradata = v.codec_context.extradata
            self.vdec.thread_type = "SLICE"  # frame threads would hold frames back
            self.vtb = v.time_base
            if a is not None:
                self.adec = av.CodecContext.create(a.codec_context.name, "r")
                self.adec.extradata = a.codec_context.extradata
                self.atb = a.time_base
                self.rate = a.codec_context.sample_rate or 48000
                self.onsets = stamp.OnsetDetector(self.rate)

    def decode(self, fragment: bytes, received: float, part: tuple[int, int],
               joined: bool = False) -> tuple[list[FrameSample], list[float]]:
        import av

        samples: list[FrameSample] = []
        onsets: list[float] = []
        try:
            c = av.open(io.BytesIO(self.init + fragment), format="mp4")
        except av.FFmpegError:
            self.errors += 1
            return samples, onsets
        with c:
            for pkt in c.demux():
                if pkt.size == 0:
                    continue
                try:
                    if pkt.stream.type == "video":
                        for f in self.vdec.decode(pkt):
                            now = time.time()
                            self.frames += 1
                            ms = stamp.read_stamp(f, self.region, now_ms=now * 1000)
                            pts = float(f.pts * self.vtb) if f.pts is not None else float("nan")
                            samples.append(FrameSample(ms, received, now, pts, part, joined))
                    elif pkt.stream.type == "audio" and self.adec is not None:
                        for f in self.adec.decode(pkt):
                            pcm = f.to_ndarray()
                            mono = pcm.mean(axis=0) if pcm.ndim == 2 else pcm
                            if f.format.name in ("s16", "s16p"):
                                mono = mono / 32768.0
                            pos = round(f.pts * self.atb * self.rate)
                            self.audio_samples += f.samples
                            onsets += [o / self.rate for o in self.onsets.feed(mono, pos)]
                except av.FFmpegError:
                    self.errors += 1
        return samples, onsets


@dataclass
class Watcher:
    base_url: str
    production: str
    rendition: str | None = None
    region: stamp.Region | None = None
    fetch: str = "hint"  # "hint": stream the preload-hinted part; "listed": only listed parts
    samples: list[FrameSample] = field(default_factory=list)
    onsets: list[float] = field(default_factory=list)  # beep onsets, media seconds
    variant: hls.Variant | None = None
    parts_fetched: int = 0
    hint_streams: int = 0
    http_errors: int = 0
    started: float = 0.0

    def __post_init__(self) -> None:
        self.first_stamp = asyncio.Event()
        self._exec = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="probe-dec")
        self._decoder = Decoder(self.region)
        self._init_uri: str | None = None

    @property
    def multivariant_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/hls/{self.production}/index.m3u8"

    @property
    def decoder_errors(self) -> int:
        return self._decoder.errors

    async def _get(self, http: aiohttp.ClientSession, url: str, **params: int) -> bytes:
        async with http.get(url, params=params or None) as r:
            if r.status != 200:
                raise _HttpStatus(r.status, (await r.text())[:200])
            return await r.read()

    async def _process(self, data: bytes, received: float, part: tuple[int, int],
                       joined: bool) -> None:
        loop = asyncio.get_running_loop()
        samples, onsets = await loop.run_in_executor(
            self._exec, self._decoder.decode, data, received, part, joined)
        self.samples += samples
        self.onsets += onsets
        if not self.first_stamp.is_set() and any(s.capture_ms is not None for s in samples):
            self.first_stamp.set()

    async def _ensure_init(self, http: aiohttp.ClientSession, media_url: str,
                           map_uri: str | None) -> None:
        if map_uri is None:
            raise WatchError("the media playlist has no EXT-X-MAP (not fMP4)")
        if map_uri == self._init_uri:
            return
        init = await self._get(http, hls.resolve(media_url, map_uri))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._exec, self._decoder.set_init, init)
        self._init_uri = map_uri

    async def _fetch_part(self, http: aiohttp.ClientSession, media_url: str, p: hls.PartRef,
                          joined: bool = False) -> bool:
        """Fetch a listed (complete) part and decode it."""
        await self._ensure_init(http, media_url, p.map_uri)
        try:
            data = await self._get(http, hls.resolve(media_url, p.uri))
        except _HttpStatus as exc:
            self.http_errors += 1
            log.debug("part %s: %s", p.uri, exc)
            return False
        self.parts_fetched += 1
        await self._process(data, time.time(), p.pos, joined)
        return True

    async def _stream_hint(self, http: aiohttp.ClientSession, media_url: str,
                           p: hls.PartRef) -> bool:
        """Request the preload-hinted part; decode each chunk as soon as it has arrived.
        True when the whole part came."""
        await self._ensure_init(http, media_url, p.map_uri)
        buf = bytearray()
        try:
            async with http.get(hls.resolve(media_url, p.uri)) as r:
                if r.status != 200:
                    self.http_errors += 1
                    return False
                async for piece in r.content.iter_any():
                    buf += piece
                    for frag in split_fragments(buf):
                        await self._process(frag, time.time(), p.pos, False)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            self.http_errors += 1  # the server cut a part that never completed
            return False
        self.hint_streams += 1
        self.parts_fetched += 1
        return True

    async def _reload(self, http: aiohttp.ClientSession, media_url: str,
                      pos: tuple[int, int] | None) -> hls.MediaPlaylist:
        params = {"_HLS_msn": pos[0], "_HLS_part": pos[1]} if pos else {}
        for attempt in range(20):
            try:
                return hls.parse_media_playlist((await self._get(http, media_url,
                                                                 **params)).decode())
            except _HttpStatus as exc:
                self.http_errors += 1
                if exc.status == 400:  # too far ahead (we fell behind a restart): plain reload
                    params = {}
                elif exc.status not in (503, 404) or attempt == 19:
                    raise WatchError(f"media playlist: HTTP {exc.status} {exc.body}") from None
                await asyncio.sleep(0.1)
        raise AssertionError("unreachable")

    async def run(self, http: aiohttp.ClientSession) -> None:
        """Watch until cancelled. Raises WatchError when there is nothing to watch."""
        self.started = time.time()
        try:
            try:
                text = (await self._get(http, self.multivariant_url)).decode()
            except _HttpStatus as exc:
                raise WatchError(f"production {self.production!r} has no HLS output "
                                 f"({self.multivariant_url}: HTTP {exc.status})") from None
            try:
                self.variant = hls.choose_variant(hls.parse_multivariant(text), self.rendition)
            except ValueError as exc:
                raise WatchError(str(exc)) from None
            media_url = hls.resolve(self.multivariant_url, self.variant.uri)
            pl = await self._reload(http, media_url, None)
            # join at the newest independent part
            starts = [i for i, p in enumerate(pl.parts) if p.independent]
            todo = pl.parts[starts[-1]:] if starts else []
            done: tuple[int, int] | None = None
            for p in todo:
                await self._fetch_part(http, media_url, p, joined=True)
                done = p.pos
            while not pl.ended:
                for p in pl.parts:
                    if done is None or p.pos > done:
                        if done is None and not p.independent:
                            continue  # cannot start decoding on a P-frame part
                        await self._fetch_part(http, media_url, p)
                        done = p.pos
                nxt = pl.next_position()
                reload = asyncio.ensure_future(self._reload(http, media_url, nxt))
                ok = False
                try:
                    if self.fetch == "hint" and pl.hint is not None and (
                            done is not None or nxt[1] == 0):
                        ok = await self._stream_hint(http, media_url, pl.hint)
                    pl = await reload
                finally:
                    if not reload.done():
                        reload.cancel()
                if ok:
                    done = nxt
        finally:
            self._exec.shutdown(wait=True, cancel_futures=True)


class _HttpStatus(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body = status, body
