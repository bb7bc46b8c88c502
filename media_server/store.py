"""Durable production records behind a small interface.

`SqliteStore` is the embedded default (one file in the data dir, survives restarts). The
interface is deliberately small and synchronous-in-a-thread so a Redis implementation for
several nodes can slot in later without touching the HTTP layer.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def new_token() -> str:
    """A random 192-bit URL-safe token."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Production:
    id: str
    title: str
    width: int
    height: int
    fps: int
    publish_token: str
    director_token: str
    max_sources: int
    created_at: float = field(default_factory=time.time)
    ended_at: float | None = None

    @property
    def state(self) -> str:
        return "ended" if self.ended_at is not None else "active"

    def public_dict(self, *, with_tokens: bool) -> dict[str, object]:
        d = asdict(self)
        d["state"] = self.state
        d["video"] = {"width": d.pop("width"), "height": d.pop("height"), "fps": d.pop("fps")}
        if not with_tokens:
            d.pop("publish_token")
            d.pop("director_token")
        return d


class ProductionExists(Exception):
    pass


class Store(Protocol):
    async def create(self, p: Production) -> None: ...
    async def get(self, production_id: str) -> Production | None: ...
    async def list(self) -> list[Production]: ...
    async def end(self, production_id: str, when: float) -> Production | None: ...
    async def close(self) -> None: ...


class SqliteStore:
    """Productions in an SQLite file; each call runs in a worker thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        os.chmod(path, 0o600)  # tokens live here
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS productions (id TEXT PRIMARY KEY, data TEXT NOT NULL)"
        )

    def _run(self, fn, *args):  # type: ignore[no-untyped-def]
        def locked():  # type: ignore[no-untyped-def]
            with self._lock:
                return fn(*args)

        return asyncio.to_thread(locked)

    async def create(self, p: Production) -> None:
        def op() -> None:
            try:
                self._db.execute("INSERT INTO productions VALUES (?, ?)",
                                 (p.id, json.dumps(asdict(p))))
            except sqlite3.IntegrityError:
                raise ProductionExists(p.id) from None

        await self._run(op)

    async def get(self, production_id: str) -> Production | None:
        def op() -> Production | None:
            row = self._db.execute("SELECT data FROM productions WHERE id = ?",
                                   (production_id,)).fetchone()
            return Production(**json.loads(row[0])) if row else None

        return await self._run(op)

    async def list(self) -> list[Production]:
        def op() -> list[Production]:
            rows = self._db.execute("SELECT data FROM productions ORDER BY id").fetchall()
            return [Production(**json.loads(r[0])) for r in rows]

        return await self._run(op)

    async def end(self, production_id: str, when: float) -> Production | None:
        def op() -> Production | None:
            row = self._db.execute("SELECT data FROM productions WHERE id = ?",
                                   (production_id,)).fetchone()
            if row is None:
                return None
            d = json.loads(row[0])
            if d.get("ended_at") is None:
                d["ended_at"] = when
                self._db.execute("UPDATE productions SET data = ? WHERE id = ?",
                                 (json.dumps(d), production_id))
            return Production(**d)

        return await self._run(op)

    async def close(self) -> None:
        await self._run(self._db.close)
