from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from media_server.store import Production, ProductionExists, SqliteStore, new_token


def prod(pid: str = "quake") -> Production:
    return Production(id=pid, title="甘孜 6.8 级地震", width=1280, height=720, fps=30,
                      publish_token=new_token(), director_token=new_token(), max_sources=16)


async def test_persists_across_reopen(tmp_path: Path) -> None:
    db = tmp_path / "d" / "s.db"
    store = SqliteStore(db)
    p = prod()
    await store.create(p)
    with pytest.raises(ProductionExists):
        await store.create(prod())
    await store.close()
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    store = SqliteStore(db)
    assert await store.get("quake") == p
    ended = await store.end("quake", 123.0)
    assert ended is not None and ended.state == "ended" and ended.ended_at == 123.0
    again = await store.end("quake", 456.0)
    assert again is not None and again.ended_at == 123.0
    assert await store.end("nope", 1.0) is None
    assert [x.id for x in await store.list()] == ["quake"]
    await store.close()


def test_tokens_are_long_and_random() -> None:
    a, b = new_token(), new_token()
    assert a != b
    assert len(a) * 6 >= 128
