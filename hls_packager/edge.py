"""The HLS edge: a lean HTTP/1.1 listener that serves only ``/hls/...`` for large audiences.

A thousand LL-HLS viewers at 200 ms parts make ~10 000 requests a second, and they all arrive in
one burst when a part is published: every blocked playlist reload returns at once, and every
player then asks for the new part. Through aiohttp (request objects, routing, middlewares,
header multidicts) one core answers ~8 000 requests a second, so the last viewers of a burst got
the part hundreds of milliseconds after it existed. This listener runs on the same event loop
and the same `HlsRegistry`, asks `serving.plan` what to answer (so every LL-HLS rule and error is
the same as on the main port) and writes the response bytes straight to the transport:

- requests are parsed by hand (request line + headers, ≤ `max_header_bytes`); only GET, HEAD
  and OPTIONS (CORS preflight) are served, no request bodies;
- keep-alive (HTTP/1.1 default, HTTP/1.0 with ``Connection: keep-alive``) and pipelining:
  requests of one connection are answered in order; a connection with a request waiting (a
  blocking reload) reads no further requests until it is answered;
- answers that exist are written in the same callback that parsed the request, and a blocking
  reload is a callback on the rendition's `Signal`: when a part is published, every waiting
  playlist response is written in that one pass (no task, no lock hand-off per request); only
  hinted parts and disk reads get a task;
- response heads are cached per kind (only Date and Content-Length change);
- idle keep-alive connections are closed after `idle_timeout_s` (one sweep a second, not a
  timer per request); past `max_connections` a new connection gets a 503 and is closed;
- no per-request access log (the main port's ``server.access_log`` does not log /hls/ either
  by default); counters in `stats()`.

Errors use the project's JSON shape, like the main port. Run it with ``server.hls_port``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, unquote

from hls_packager import serving
from hls_packager.server import HlsRegistry
from hls_packager.serving import CACHE_MEDIA, CORS_HEADERS, MEDIA_CONTENT_TYPE, Reply

log = logging.getLogger(__name__)

_STATUS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 414: "URI Too Long",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           503: "Service Unavailable"}
_ALLOW = "GET, HEAD, OPTIONS"
_PREFLIGHT = {**CORS_HEADERS, "Access-Control-Allow-Methods": _ALLOW,
              "Access-Control-Allow-Headers": "*", "Access-Control-Max-Age": "86400"}


class HlsEdge:
    """`/hls/...` of a registry on its own listener. `start()` on the loop, `close()` at the end."""

    def __init__(self, registry: HlsRegistry, *, max_header_bytes: int = 8192,
                 idle_timeout_s: float = 60.0, max_connections: int = 20000) -> None:
        self.registry = registry
        self.max_header_bytes = max_header_bytes
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.servers: list[asyncio.base_events.Server] = []
        self.connections: set[_Connection] = set()
        self.requests = 0
        self.responses: dict[int, int] = {}
        self.refused = 0
        self._date = b""
        self._date_at = 0.0
        self._heads: dict[tuple, bytes] = {}  # response head after the Date line, per kind
        # whole responses lately built: (id(body), kind) -> (body, date line, bytes)
        self.responses_built: dict[tuple, tuple[bytes, bytes, bytes]] = {}
        self._sweeper: asyncio.Task | None = None

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        """Listen on host:port (port 0: any free one); returns the port."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Connection(self), host, port,
                                          reuse_port=reuse_port or None, backlog=4096)
        self.servers.append(server)
        if self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep_idle())
        sock = server.sockets[0]
        return int(sock.getsockname()[1])

    async def _sweep_idle(self) -> None:
        period = min(1.0, self.idle_timeout_s / 2)
        while True:
            await asyncio.sleep(period)
            limit = time.monotonic() - self.idle_timeout_s
            for conn in [c for c in self.connections if c.idle_since(limit)]:
                conn.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for server in self.servers:
            server.close()
        for conn in list(self.connections):
            conn.close()
        for server in self.servers:
            await server.wait_closed()
        self.servers.clear()

    def stats(self) -> dict[str, Any]:
        return {"connections": len(self.connections), "requests": self.requests,
                "responses": dict(self.responses), "refused_connections": self.refused}

    def date_line(self) -> bytes:
        now = time.time()
        if now - self._date_at >= 1.0:
            self._date = f"Date: {formatdate(now, usegmt=True)}\r\n".encode()
            self._date_at = now
        return self._date

    def head(self, status: int, headers: dict[str, str], keep_alive: bool) -> bytes:
        """Status line, Date and `headers` (+ Server, Connection); ends with the blank line
        unless the caller adds Content-Length (see `_Connection._send`)."""
        key = (status, tuple(headers.items()), keep_alive)
        tail = self._heads.get(key)
        if tail is None:
            lines = ["Server: scenecloud-edge", *(f"{k}: {v}" for k, v in headers.items()),
                     "Connection: keep-alive" if keep_alive else "Connection: close"]
            tail = ("\r\n".join(lines) + "\r\n").encode("latin-1")
            if len(self._heads) < 256:
                self._heads[key] = tail
        status_line = f"HTTP/1.1 {status} {_STATUS.get(status, 'Unknown')}\r\n".encode()
        return status_line + self.date_line() + tail


class _Request:
    __slots__ = ("agent", "head", "keep_alive", "method", "target")

    def __init__(self, method: str, target: str, keep_alive: bool, agent: str) -> None:
        self.method, self.target, self.keep_alive, self.agent = method, target, keep_alive, agent
        self.head = method == "HEAD"


class _Connection(asyncio.Protocol):
    __slots__ = ("_buf", "_busy", "_closing", "_last", "_pending", "_stopped", "_task",
                 "_write_paused", "address", "edge", "transport")

    def __init__(self, edge: HlsEdge) -> None:
        self.edge = edge
        self.transport: asyncio.Transport | None = None
        self.address = "?"
        self._buf = b""
        self._pending: deque[_Request | Reply] = deque()  # parsed, not yet answered
        self._busy = False  # a task is producing the current answer
        self._closing = False
        self._stopped = False  # no more requests are read (an error or Connection: close)
        self._write_paused = False
        self._task: asyncio.Task | None = None
        self._last = time.monotonic()  # last request or answer (idle sweep)

    # -- transport callbacks ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.address = peer[0] if peer else "?"
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:  # parts and playlists are small: send them now, not after Nagle's delay
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        edge = self.edge
        if len(edge.connections) >= edge.max_connections:
            edge.refused += 1
            self._send(serving.error(503, "too many connections"), keep_alive=False)
            return
        edge.connections.add(self)

    def idle_since(self, limit: float) -> bool:
        """Nothing in progress, and no request since `limit` (monotonic)?"""
        return not self._busy and not self._pending and self._last < limit

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self.edge.connections.discard(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._last = time.monotonic()
        self._buf += data
        limit = self.edge.max_header_bytes
        while not self._closing:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0 and len(self._buf) <= limit:
                break
            if end < 0 or end > limit:
                self._queue(serving.error(431, f"request head over {limit} bytes"))
                self._stop_reading()
                break
            head, self._buf = self._buf[:end], self._buf[end + 4:]
            item, last = self._parse(head)
            self._queue(item)
            if last:  # an error or Connection: close: nothing after it is read
                self._stop_reading()
                break
        self._run()

    def pause_writing(self) -> None:
        # A slow reader: stop reading its requests until what we wrote has gone out.
        self._write_paused = True
        self._reading(False)

    def resume_writing(self) -> None:
        self._write_paused = False
        self._run()

    def _reading(self, on: bool) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if on and not t.is_reading():
            t.resume_reading()
        elif not on and t.is_reading():
            t.pause_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- requests -------------------------------------------------------------------------
    def _parse(self, head: bytes) -> tuple[_Request | Reply, bool]:
        """The request in `head` (or the error to answer) and whether it is the last one of
        this connection."""
        try:
            text = head.decode("latin-1")
            lines = text.split("\r\n")
            method, target, version = lines[0].split(" ")
        except ValueError:
            return serving.error(400, "malformed request line"), True
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            return serving.error(400, f"unsupported protocol {version[:16]!r}"), True
        keep_alive = version == "HTTP/1.1"
        agent = ""
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                return serving.error(400, "malformed header line"), True
            key = name.lower()
            value = value.strip()
            if key == "connection":
                tokens = {t.strip().lower() for t in value.split(",")}
                if "close" in tokens:
                    keep_alive = False
                elif "keep-alive" in tokens:
                    keep_alive = True
            elif key == "user-agent":
                agent = value
            elif key == "transfer-encoding" or (key == "content-length" and value != "0"):
                return serving.error(400, "request bodies are not accepted"), True
        return _Request(method, target, keep_alive, agent), not keep_alive

    MAX_PIPELINED = 16

    def _queue(self, item: _Request | Reply) -> None:
        self._pending.append(item)
        if len(self._pending) > self.MAX_PIPELINED:
            self._reading(False)  # a pipelining client far ahead of its answers

    def _stop_reading(self) -> None:
        """Read no more requests; close once the queued ones are answered."""
        self._pending.append(_CLOSE)
        self._stopped = True
        self._reading(False)

    def _run(self) -> None:
        """Answer queued requests in order until one needs to wait (a blocking reload waits as
        a callback on its rendition's signal; a hinted part or a disk read gets a task)."""
        edge = self.edge
        while self._pending and not self._busy and not self._closing \
                and not self._write_paused:
            item = self._pending.popleft()
            if item is _CLOSE:
                self._closing = True
                self.close()
                return
            if isinstance(item, Reply):
                self._send(item, keep_alive=False)
                continue
            edge.requests += 1
            action = self._dispatch(item)
            if isinstance(action, Reply):
                self._send(action, item.keep_alive, item.head)
                continue
            self._busy = True
            if isinstance(action, serving.Hold):
                self._hold(item, action)
            else:
                self._task = asyncio.get_running_loop().create_task(self._finish(item, action))
        if self._closing or self._stopped or self._write_paused:
            return
        if len(self._pending) <= self.MAX_PIPELINED:
            self._reading(True)

    def _hold(self, req: _Request, hold: serving.Hold) -> None:
        """A blocking reload as a callback on the rendition's signal (no task)."""
        done = False

        def finish(ok: bool) -> None:
            nonlocal done
            if done:
                return
            done = True
            timer.cancel()
            self._busy = False
            if self._closing:
                return
            try:
                reply = hold.finish(ok)
            except Exception:
                log.exception("HLS edge: error answering %s", req.target[:200])
                reply = serving.error(500, "internal error; see server log")
            self._send(reply, req.keep_alive, req.head)
            self._run()

        def on_change() -> bool:
            if done or self._closing:
                return True
            if hold.ready():
                finish(True)
                return True
            return False

        timer = asyncio.get_running_loop().call_later(hold.hold_s,
                                                      lambda: finish(hold.ready()))
        hold.out.changed.subscribe(on_change)

    def _dispatch(self, req: _Request) -> serving.Action | Reply:
        if req.method == "OPTIONS":
            return Reply(204, b"", "text/plain", "no-cache")
        if req.method not in ("GET", "HEAD"):
            return serving.error(405, f"method {req.method[:16]} not allowed; use GET")
        target = req.target
        if target.startswith(("http://", "https://")):  # absolute-form
            slash = target.find("/", target.find("//") + 2)
            target = target[slash:] if slash >= 0 else "/"
        path, _, query = target.partition("?")
        if len(target) > 2048:
            return serving.error(414, "request target over 2048 bytes")
        route = serving.split_path(unquote(path))
        if route is None:
            return serving.error(404, "not an HLS path (/hls/{production}/...)")
        try:
            return serving.plan(self.edge.registry, *route,
                                parse_qsl(query, keep_blank_values=True),
                                (self.address, req.agent))
        except Exception:
            log.exception("HLS edge: error answering %s", path[:200])
            return serving.error(500, "internal error; see server log")

    async def _finish(self, req: _Request, action: serving.Action) -> None:
        try:
            result = await serving.settle(action)
            if isinstance(result, Reply):
                self._send(result, req.keep_alive, req.head)
            else:
                await self._stream(result, req)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HLS edge: error answering %s", req.target[:200])
            self._send(serving.error(500, "internal error; see server log"), keep_alive=False)
            return
        finally:
            self._busy = False
            self._task = None
        self._run()

    async def _stream(self, ps: serving.PartStream, req: _Request) -> None:
        transport = self.transport
        assert transport is not None

        async def start() -> None:
            headers = {"Content-Type": MEDIA_CONTENT_TYPE, "Transfer-Encoding": "chunked",
                       **CORS_HEADERS, "Cache-Control": CACHE_MEDIA}
            transport.write(self.edge.head(200, headers, req.keep_alive) + b"\r\n")
            self._count(200)

        async def write(data: bytes) -> None:
            if data and not req.head:
                transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))

        done = await ps.run(start, write)
        if isinstance(done, Reply):
            self._send(done, req.keep_alive, req.head)
        elif done:
            if not req.head:
                transport.write(b"0\r\n\r\n")
            if not req.keep_alive:
                self._closing = True
                transport.close()
        else:
            # Started but never complete: cut without the last chunk (a failed transfer).
            self._closing = True
            transport.close()

    # -- responses ------------------------------------------------------------------------
    def _head_of(self, reply: Reply, keep_alive: bool) -> bytes:
        headers = {"Content-Type": reply.content_type_header, **reply.headers()}
        if reply.status == 405:
            headers["Allow"] = _ALLOW
        return (self.edge.head(reply.status, headers, keep_alive)
                + b"Content-Length: %d\r\n\r\n" % len(reply.body))

    def _count(self, status: int) -> None:
        r = self.edge.responses
        r[status] = r.get(status, 0) + 1

    def _send(self, reply: Reply, keep_alive: bool, head_only: bool = False) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._last = time.monotonic()
        edge = self.edge
        if reply.status == 204:
            transport.write(edge.head(204, _PREFLIGHT, keep_alive) + b"\r\n")
        elif head_only or not reply.body:
            transport.write(self._head_of(reply, keep_alive))
        else:
            # A thousand viewers get the same playlist, then the same part: the whole response
            # is built once (per body, kind and second) and then only written.
            key = (id(reply.body), reply.status, reply.content_type, reply.cache,
                   reply.retry_after, keep_alive)
            hit = edge.responses_built.get(key)
            date = edge.date_line()
            if hit is not None and hit[0] is reply.body and hit[1] is date:
                transport.write(hit[2])
            else:
                blob = self._head_of(reply, keep_alive) + reply.body
                if len(edge.responses_built) >= 16:
                    edge.responses_built.clear()
                edge.responses_built[key] = (reply.body, edge.date_line(), blob)
                transport.write(blob)
        self._count(reply.status)
        if reply.delivered is not None:
            reply.delivered()
        if not keep_alive:
            self._closing = True
            transport.close()


_CLOSE: Any = object()  # queue marker: close the connection here
