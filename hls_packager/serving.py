"""What to answer an HLS GET, whatever HTTP server carries it.

Two servers carry `/hls/...`: the aiohttp routes on the main port (`server.register_hls_routes`)
and the lean edge listener for large audiences (`edge.HlsEdge`). Both call `plan()` and carry out
the `Action` it returns, so the LL-HLS rules (blocking reload, delta updates, hinted parts, the
errors and their statuses) live here once:

- `Reply`: send these bytes now;
- `Hold`: a blocking playlist reload — wait until `ready()` (woken by the rendition's `Signal`,
  no polling) or `hold_s`, then send `finish(ready)`;
- `Load`: read from the store off the event loop (`read()` in an executor), send `finish(data)`;
- `PartStream`: the preload-hinted part, sent with chunked transfer as its CMAF chunks are
  produced (`PartStream.run`).

`settle()` turns Hold and Load into their Reply. Errors use the project's one JSON shape
``{"error": <code>, "detail": <text>[, "field": <query parameter>]}``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from media_server.errors import error_body

if TYPE_CHECKING:
    from hls_packager.segmenter import Part
    from hls_packager.server import HlsRegistry, Packager, RenditionOutput

log = logging.getLogger(__name__)

PLAYLIST_CONTENT_TYPE = "application/vnd.apple.mpegurl"
MEDIA_CONTENT_TYPE = "video/mp4"
JSON_CONTENT_TYPE = "application/json"
CACHE_PLAYLIST = "no-cache"
CACHE_MEDIA = "public, max-age=31536000, immutable"
# Seconds a client should wait before retrying after a 503 (about one segment).
RETRY_AFTER_S = 1
# CORS for GET: viewers' players run on any origin.
CORS_HEADERS = {"Access-Control-Allow-Origin": "*",
                "Access-Control-Expose-Headers": "Content-Length"}

_INT_RE = re.compile(r"^[0-9]{1,15}$")
_FILE_RE = re.compile(
    r"^(?:(?P<playlist>index\.m3u8)|init(?P<init>\d{1,9})\.mp4|seg(?P<seg>\d{1,15})\.m4s|"
    r"part(?P<pmsn>\d{1,15})\.(?P<pidx>\d{1,5})\.m4s)$"
)


# --------------------------------------------------------------------------- actions


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str
    cache: str
    retry_after: int | None = None
    # Called once the reply is handed to the transport (a part's delivery latency).
    delivered: Callable[[], None] | None = None

    @property
    def content_type_header(self) -> str:
        if self.content_type in (PLAYLIST_CONTENT_TYPE, JSON_CONTENT_TYPE):
            return f"{self.content_type}; charset=utf-8"
        return self.content_type

    def headers(self) -> dict[str, str]:
        """Headers besides Content-Type/Content-Length (CORS, caching, Retry-After)."""
        h = {**CORS_HEADERS, "Cache-Control": self.cache}
        if self.retry_after is not None:
            h["Retry-After"] = str(self.retry_after)
        return h


@dataclass(slots=True)
class Hold:
    out: RenditionOutput
    ready: Callable[[], bool]
    hold_s: float
    finish: Callable[[bool], Reply]


@dataclass(slots=True)
class Load:
    read: Callable[[], bytes | None]
    finish: Callable[[bytes | None], Reply]


def error(status: int, detail: str, *, field: str | None = None) -> Reply:
    """The project's JSON error shape, CORS-open and never cached; 503 carries Retry-After."""
    return Reply(status, error_body(status, detail, field=field), JSON_CONTENT_TYPE,
                 CACHE_PLAYLIST, RETRY_AFTER_S if status == 503 else None)


def playlist(body: bytes) -> Reply:
    return Reply(200, body, PLAYLIST_CONTENT_TYPE, CACHE_PLAYLIST)


def media(data: bytes, delivered: Callable[[], None] | None = None) -> Reply:
    return Reply(200, data, MEDIA_CONTENT_TYPE, CACHE_MEDIA, delivered=delivered)


def part_reply(out: RenditionOutput, part: Part, requested: float) -> Reply:
    return media(part.data, lambda: out.delivered(part, requested))


# --------------------------------------------------------------------------- routing


def split_path(path: str) -> tuple[str, str | None, str] | None:
    """``/hls/{production}/index.m3u8`` -> (production, None, "index.m3u8");
    ``/hls/{production}/{rendition}/{name}`` -> (production, rendition, name); else None."""
    parts = path.split("/")
    if len(parts) == 4 and parts[1] == "hls" and parts[3] == "index.m3u8" and parts[2]:
        return parts[2], None, parts[3]
    if len(parts) == 5 and parts[1] == "hls" and all(parts[2:]):
        return parts[2], parts[3], parts[4]
    return None


def plan(registry: HlsRegistry, production: str, rendition: str | None, name: str,
         query: Iterable[tuple[str, str]], client: tuple[str, str] = ("?", "")) -> Action:
    """The answer to GET /hls/{production}[/{rendition}]/{name}?{query}; `client` is (address,
    user agent), counted as a viewer when it loads a media playlist."""
    p = registry.get(production)
    if p is None:
        return error(404, "unknown production")
    if rendition is None:
        if name != "index.m3u8":
            return error(404, "unknown file")
        return playlist(p.multivariant_playlist().encode())
    out = p.outputs.get(rendition)
    if out is None:
        return error(404, "unknown rendition")
    m = _FILE_RE.match(name)
    if m is None:
        return error(404, "unknown file")
    # RFC 8216bis 6.2.5.2: "A Server that cannot provide the requested Playlist after blocking
    # for more than three Target Durations SHOULD return Service Unavailable, such as HTTP
    # 503" (block_timeout_targets, default 3). The same bound holds hinted parts.
    hold_s = p.config.block_timeout_targets * p.timing.target_duration
    if m["playlist"]:
        out.seen_client(*client)
        return _media_playlist(p, out, query, hold_s)
    if m["init"] is not None:
        init_id = int(m["init"])
        return Load(lambda: out.store.get_init(out.name, init_id),
                    lambda data: media(data) if data is not None else error(404, "unknown init"))
    if m["seg"] is not None:
        msn = int(m["seg"])
        seg = out.window.segment(msn)
        if seg is not None:
            return media(seg.data)
        return Load(lambda: out.store.get_segment(out.name, msn),
                    lambda data: media(data) if data is not None
                    else error(404, "unknown segment"))
    return _part(p, out, int(m["pmsn"]), int(m["pidx"]), hold_s)


def _part(p: Packager, out: RenditionOutput, msn: int, idx: int, hold_s: float) -> Action:
    w = out.window
    part = w.part(msn, idx)
    if part is not None:
        return part_reply(out, part, time.time())
    lp = w.last_part
    ahead = parts_ahead(lp, msn, idx, p.timing.parts_per_segment) if lp else 1
    # RFC 8216bis 6.2.6: a hinted resource must be available for request when its
    # EXT-X-PRELOAD-HINT is added, and its bytes go out only as the part is produced; anything
    # else that is not there (expired, never hinted, beyond a segment's last part) -> 404.
    if out.ended or w.segment(msn) is not None or w.has(msn, idx) or not 0 < ahead <= 2:
        return error(404, "unknown or expired part")
    return PartStream(out, msn, idx, hold_s, time.time())


def parts_ahead(last: tuple[int, int], msn: int, idx: int, per_segment: int) -> int:
    return (msn - last[0]) * per_segment + idx - last[1]


class _BadDirective(Exception):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


def _decimal(key: str, value: str) -> int:
    if not _INT_RE.match(value):
        raise _BadDirective(key, f"{key} must be a decimal integer")
    return int(value)


def _media_playlist(p: Packager, out: RenditionOutput, query: Iterable[tuple[str, str]],
                    hold_s: float) -> Action:
    msn = part = None
    skip = ""
    try:
        for key, value in query:
            if key == "_HLS_msn":
                msn = _decimal(key, value)
            elif key == "_HLS_part":
                part = _decimal(key, value)
            elif key == "_HLS_skip":
                # RFC 8216bis 6.2.5.1: YES skips segments; v2 also skips EXT-X-DATERANGE tags
                # (we write none, so the delta update only differs by an empty
                # RECENTLY-REMOVED-DATERANGES attribute). Anything else is malformed.
                if value not in ("YES", "v2"):
                    raise _BadDirective(key, "_HLS_skip must be YES or v2")
                skip = value
        # RFC 8216bis 6.2.5.2: "If the Playlist URI contains an _HLS_part directive but no
        # _HLS_msn directive, the Server MUST return Bad Request, such as HTTP 400."
        if part is not None and msn is None:
            raise _BadDirective("_HLS_part", "_HLS_part without _HLS_msn")
    except _BadDirective as e:
        return error(400, e.detail, field=e.field)

    def answer() -> Reply:
        return playlist(p.media_playlist_bytes(out.name, skip=skip))

    w = out.window
    # RFC 8216bis 6.2.5.2: _HLS_msn/_HLS_part are ignored once the playlist has EXT-X-ENDLIST.
    if out.ended:
        return answer()
    if msn is not None:
        per = p.timing.parts_per_segment
        last = w.last_complete_msn
        # 6.2.5.2: "If the _HLS_msn is greater than the Media Sequence Number of the last
        # Media Segment in the current Playlist plus two, or if the _HLS_part exceeds the
        # last Partial Segment in the current Playlist by the Advance Part Limit [3 / part
        # target if it is < 1 s, else 3], then the server SHOULD immediately return Bad
        # Request, such as HTTP 400." The last Media Segment is the last one with a URI.
        if last is not None and msn > last + 2:
            return error(400, f"_HLS_msn={msn} is more than 2 segments after the last "
                              f"segment ({last})", field="_HLS_msn")
        lp = w.last_part
        pt = p.timing.part_target_s
        limit = 3 / pt if pt < 1 else 3
        if part is not None and lp is not None:
            # 6.2.5.2: a Part Index beyond the segment's last part means part 0 of the next.
            m, n = (msn + 1, 0) if part >= per else (msn, part)
            if parts_ahead(lp, m, n, per) > limit:
                return error(400, f"_HLS_part={part} is beyond the Advance Part Limit "
                                  f"({limit:g} parts)", field="_HLS_part")
        # 6.2.5.2: defer the response until the playlist holds segment M (or part N of it);
        # LiveWindow.has maps an index past the last part to part 0 of the next one.
        m_, n_ = msn, part

        def ready() -> bool:
            return w.has(m_, n_) or out.ended

        def finish(ok: bool) -> Reply:
            if not ok:
                return error(503, "playlist did not reach the requested segment/part in time "
                                  f"({hold_s:g} s)")
            return answer()

        return answer() if ready() else Hold(out, ready, hold_s, finish)
    if w.last_part is None:
        # Nothing produced yet: hold the first request until the first part exists.
        def first() -> bool:
            return w.last_part is not None or out.ended

        return Hold(out, first, hold_s,
                    lambda ok: answer() if ok else error(503, "no media yet"))
    return answer()


async def settle(action: Action) -> Reply | PartStream:
    """Carry out a Hold or a Load (on the running loop); other actions come back as they are."""
    if isinstance(action, Hold):
        return action.finish(await action.out.wait(action.ready, action.hold_s))
    if isinstance(action, Load):
        data = await asyncio.get_running_loop().run_in_executor(None, action.read)
        return action.finish(data)
    return action


# --------------------------------------------------------------------------- hinted parts


class PartStream:
    """The preload-hinted part (or the one after it), sent as the encoder produces it."""

    __slots__ = ("hold_s", "idx", "msn", "out", "requested")

    def __init__(self, out: RenditionOutput, msn: int, idx: int, hold_s: float,
                 requested: float) -> None:
        self.out, self.msn, self.idx, self.hold_s = out, msn, idx, hold_s
        self.requested = requested

    async def run(self, start: Callable[[], Awaitable[None]],
                  write: Callable[[bytes], Awaitable[None]]) -> Reply | bool:
        """Stream the part: `start()` once before its first bytes (send the status line and
        chunked-transfer headers), then `write(piece)` as chunks are produced.

        Returns a Reply when nothing was started (the part was complete before its first chunk
        existed: sent whole, with Content-Length; or 503/404), True when the part was sent
        complete (end the chunked body), False when it was started but will never be complete
        (the run ended, the part was skipped or the hold expired): the caller must then cut the
        connection without the final chunk, so the client sees a failed transfer rather than
        a short part that looks whole."""
        out, msn, idx = self.out, self.msn, self.idx
        w = out.window
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hold_s
        started = False
        sent_chunks = sent_bytes = 0
        while True:
            part = w.part(msn, idx)
            if part is not None:
                if not started:
                    return part_reply(out, part, self.requested)
                await write(part.data[sent_bytes:])
                out.delivered(part, self.requested)
                return True
            new = out.pending_chunks(msn, idx)[sent_chunks:]
            if new:
                if not started:
                    await start()
                    started = True
                for c in new:
                    await write(c)
                    sent_bytes += len(c)
                sent_chunks += len(new)
                continue
            if out.ended or w.has(msn, idx):  # the part will never exist (run ended/skipped)
                break
            await out.wait(lambda n=sent_chunks: len(out.pending_chunks(msn, idx)) > n
                           or w.has(msn, idx) or out.ended, deadline - loop.time(), chunks=True)
            if loop.time() >= deadline and w.part(msn, idx) is None and not (
                    out.pending_chunks(msn, idx)[sent_chunks:]):
                if not started:
                    return error(503, "part not produced in time")
                break
        return error(404, "part was not produced") if not started else False


Action = Reply | Hold | Load | PartStream


# --------------------------------------------------------------------------- wake-ups


class Signal:
    """Wakes every waiter at once.

    An `asyncio.Condition` hands its lock from waiter to waiter: a thousand blocked playlist
    requests need a thousand loop passes before the last one may even look at the new part.
    Here coroutines await one shared future, and callback waiters (the edge listener's blocked
    requests: no task each) are called in the same pass; `fire()` wakes them all."""

    __slots__ = ("_callbacks", "_fut")

    def __init__(self) -> None:
        self._fut: asyncio.Future[None] | None = None
        self._callbacks: list[Callable[[], bool]] = []

    def fire(self) -> None:
        fut, self._fut = self._fut, None
        if fut is not None and not fut.done():
            fut.set_result(None)
        if self._callbacks:
            callbacks, self._callbacks = self._callbacks, []
            for cb in callbacks:
                try:
                    done = cb()
                except Exception:  # one broken waiter must not leave the others hanging
                    log.exception("HLS waiter failed")
                    done = True
                if not done:  # wait for the next fire
                    self._callbacks.append(cb)

    def subscribe(self, callback: Callable[[], bool]) -> None:
        """Call `callback()` on every `fire()` until it returns True (done; a waiter that gave
        up returns True at the next fire, so nothing is ever searched for and removed)."""
        self._callbacks.append(callback)

    async def wait(self, timeout: float) -> bool:
        """Until the next `fire()` (True) or `timeout` seconds (False)."""
        if timeout <= 0:
            return False
        if self._fut is None:
            self._fut = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                # shield: a waiter that times out must not cancel the future the others await
                await asyncio.shield(self._fut)
            return True
        except TimeoutError:
            return False
