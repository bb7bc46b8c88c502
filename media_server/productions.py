"""Live state of productions: their sources and the tasks that watch them.

`ProductionRuntime` is the one owner of a production's source table. It runs on the event loop;
sources themselves are thread-safe for their writer (decode side) and readers (switcher,
snapshots).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from hls_packager.config import HlsConfig
from hls_packager.server import HlsRegistry, Packager
from switcher import Switcher

from .config import Config
from .errors import ApiError
from .events import EventHub
from .metrics import StageLatency
from .source import Source, SourceKind
from .store import Production

log = logging.getLogger(__name__)

MONITOR_INTERVAL_S = 0.5
ENDED_SOURCE_KEEP_S = 60.0


class TaskGroup:
    """Keeps a reference to every task it starts and logs any failure (no silent deaths)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


def ladder_for(hls: HlsConfig, p: Production) -> HlsConfig:
    """The configured ladder without rungs above the production's size (no upscaling); when
    every rung is larger, one rung at the production's own size with the smallest rung's
    bitrates."""
    rungs = tuple(r for r in hls.renditions if r.height <= p.height and r.width <= p.width)
    if not rungs:
        small = min(hls.renditions, key=lambda r: r.height)
        rungs = (dataclasses.replace(small, name=f"{p.height}p", width=p.width, height=p.height),)
    return dataclasses.replace(hls, renditions=rungs)


class ProductionRuntime:
    def __init__(self, production: Production, config: Config,
                 hls: HlsRegistry | None = None) -> None:
        self.production = production
        self.config = config
        self.sources: dict[str, Source] = {}
        self.tasks = TaskGroup(f"production:{production.id}")
        # Extra stats pollers per source (e.g. WHIP getStats), called by the monitor.
        self.pollers: dict[str, Callable[[], Awaitable[None]]] = {}
        self._lock = asyncio.Lock()
        self.closed = False
        self.events = EventHub()
        self.latency = StageLatency()  # per-stage histograms from the frames' marks
        sc = config.switcher
        self.switcher = Switcher(lambda: self.sources, width=production.width,
                                 height=production.height, fps=production.fps,
                                 signal_lost_after_s=sc.signal_lost_after_s,
                                 max_catchup_frames=sc.max_catchup_frames,
                                 name=f"switcher:{production.id}")
        self._hls = hls
        self.packager: Packager | None = None
        self._pump: threading.Thread | None = None

    @property
    def id(self) -> str:
        return self.production.id

    def start(self) -> None:
        """Start the output: switcher clock → packager (LL-HLS), events → subscribers."""
        loop = asyncio.get_running_loop()
        self.switcher.add_listener(
            lambda ev: loop.call_soon_threadsafe(self.events.publish, ev))
        if self._hls is not None:
            self.packager = self._hls.create(self.id, fps=self.production.fps,
                                             config=ladder_for(self.config.hls, self.production))
            for out in self.packager.outputs.values():
                out.on_part.append(self.latency.observe_frames)
                out.on_delivery.append(self.latency.observe_delivery)
            self.packager.start(loop)
            out = self.switcher.add_output("hls", self.config.switcher.output_queue_frames)
            packager = self.packager

            def pump() -> None:
                # Moves program frames to the packager; Packager.push never blocks.
                while not out.closed or len(out):
                    frame = out.get(timeout=0.5)
                    if frame is not None:
                        packager.push(frame)

            self._pump = threading.Thread(target=pump, name=f"hls-pump:{self.id}", daemon=True)
            self._pump.start()
        self.switcher.start()
        self.tasks.spawn(self._monitor(), "monitor")

    def active_sources(self) -> list[Source]:
        return [s for s in self.sources.values() if s.state != "ended"]

    def new_source(self, source_id: str, kind: SourceKind) -> Source:
        return Source(self.id, source_id, kind,
                      audio_buffer_ms=self.config.ingest.audio_buffer_ms,
                      stall_timeout_s=self.config.ingest.stall_timeout_s)

    async def add_source(self, source: Source, *, replace: bool) -> Source | None:
        """Register a source. With `replace`, an existing source of that id is closed and
        replaced (a publisher reconnecting under the same name); otherwise it is a 409.
        Returns the replaced source, if any."""
        if self.closed:
            raise ApiError(404, f"production {self.id!r} has ended")
        async with self._lock:
            old = self.sources.get(source.id)
            if old is not None and old.state != "ended" and not replace:
                raise ApiError(409, f"source {source.id!r} already exists in {self.id!r}")
            others = [s for s in self.active_sources() if s.id != source.id]
            if len(others) >= self.production.max_sources:
                raise ApiError(503, f"production {self.id!r} already has "
                                    f"{self.production.max_sources} sources (its limit)",
                               headers={"Retry-After": "10"})
            self.sources[source.id] = source
        if old is not None and old is not source:
            self.pollers.pop(source.id, None)
            await old.close()
            log.info("source %s/%s replaced by a new session", self.id, source.id)
        return old

    async def remove_source(self, source_id: str) -> bool:
        src = self.sources.get(source_id)
        if src is None:
            return False
        self.pollers.pop(source_id, None)
        await src.close()
        return True

    async def drop_if_current(self, source: Source) -> None:
        """Close `source` unless a newer session already replaced it."""
        if self.sources.get(source.id) is source:
            self.pollers.pop(source.id, None)
        await source.close()

    async def _monitor(self) -> None:
        while True:
            now = time.time()
            for sid, src in list(self.sources.items()):
                src.check_stall(now)
                src.sample_bitrate(now)
                poll = self.pollers.get(sid)
                if poll is not None and src.state != "ended":
                    try:
                        await poll()
                    except Exception:
                        log.debug("stats poll for %s/%s failed", self.id, sid, exc_info=True)
                if (src.state == "ended" and src.ended_at is not None
                        and now - src.ended_at > ENDED_SOURCE_KEEP_S
                        and self.sources.get(sid) is src):
                    del self.sources[sid]
            await asyncio.sleep(MONITOR_INTERVAL_S)

    async def close(self) -> None:
        """End the production: sources closed, switcher stopped, HLS output turned replay."""
        self.closed = True
        await asyncio.gather(*(s.close() for s in list(self.sources.values())),
                             return_exceptions=True)
        await asyncio.to_thread(self.switcher.close)  # closes its outputs: the pump ends
        if self._pump is not None:
            await asyncio.to_thread(self._pump.join, 5)
        if self.packager is not None:
            await self.packager.aclose()
        await self.tasks.cancel_all()

    def source_list(self) -> list[dict[str, Any]]:
        """Each source's stats with its tally (what consoles get once a second)."""
        tally = self.switcher.state_dict().get("tally", {})
        return [{**s.stats(), "tally": tally.get(sid, "off")} for sid, s in self.sources.items()]

    def describe(self) -> dict[str, Any]:
        d = self.production.public_dict(with_tokens=False)
        state = self.switcher.state_dict()
        d["sources"] = self.source_list()
        for key in ("program", "preview", "transition", "ftb", "layouts", "overlays", "audio"):
            d[key] = state.get(key)
        d["output"] = {"switcher": self.switcher.stats(),
                       "hls": self.packager.stats() if self.packager else None}
        return d
