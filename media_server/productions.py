"""Live state of productions: their sources and the tasks that watch them.

`ProductionRuntime` is the one owner of a production's source table. It runs on the event loop;
sources themselves are thread-safe for their writer (decode side) and readers (switcher,
snapshots).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .config import Config
from .errors import ApiError
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


class ProductionRuntime:
    def __init__(self, production: Production, config: Config) -> None:
        self.production = production
        self.config = config
        self.sources: dict[str, Source] = {}
        self.tasks = TaskGroup(f"production:{production.id}")
        # Extra stats pollers per source (e.g. WHIP getStats), called by the monitor.
        self.pollers: dict[str, Callable[[], Awaitable[None]]] = {}
        self._lock = asyncio.Lock()
        self.closed = False

    @property
    def id(self) -> str:
        return self.production.id

    def start(self) -> None:
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
        self.closed = True
        await asyncio.gather(*(s.close() for s in list(self.sources.values())),
                             return_exceptions=True)
        await self.tasks.cancel_all()

    def describe(self) -> dict[str, Any]:
        d = self.production.public_dict(with_tokens=False)
        d["sources"] = [s.stats() for s in self.sources.values()]
        return d
