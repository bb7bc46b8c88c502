"""Storage of a production's HLS output: everything that is ever published, for replay.

The live window (parts and the newest segments) is in RAM (`segmenter.LiveWindow`); every
complete segment and init segment is also written here, so when the live ends (or the server
restarts) a VOD replay over all segments can be served.

`HlsStore` is the small interface; `DiskStore` keeps files under
``<data_dir>/hls/<production>/``::

    meta.json                    renditions (size, codecs, bandwidth), fps, targets, ended
    <rendition>/init<id>.mp4     init segment of run <id>
    <rendition>/seg<msn>.m4s     media segment
    <rendition>/segments.jsonl   one line per segment: msn, duration, pdt, discontinuity, init

`DirectoryPublisher` additionally writes plain files (playlists included) into a directory
that nginx or a CDN serves as static files; see its docstring.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    msn: int
    duration: float
    program_date_time: float
    discontinuity: bool
    init_id: int
    size: int


class HlsStore(Protocol):
    def put_meta(self, meta: dict[str, Any]) -> None: ...
    def get_meta(self) -> dict[str, Any] | None: ...
    def put_init(self, rendition: str, init_id: int, data: bytes) -> None: ...
    def get_init(self, rendition: str, init_id: int) -> bytes | None: ...
    def put_segment(self, rendition: str, record: SegmentRecord, data: bytes) -> None: ...
    def get_segment(self, rendition: str, msn: int) -> bytes | None: ...
    def segments(self, rendition: str) -> list[SegmentRecord]: ...


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class MemoryStore:
    """Everything in RAM (tests, or when no data dir is configured)."""

    def __init__(self) -> None:
        self._meta: dict[str, Any] | None = None
        self._init: dict[tuple[str, int], bytes] = {}
        self._seg: dict[tuple[str, int], bytes] = {}
        self._records: dict[str, list[SegmentRecord]] = {}
        self._lock = threading.Lock()

    def put_meta(self, meta: dict[str, Any]) -> None:
        self._meta = json.loads(json.dumps(meta))

    def get_meta(self) -> dict[str, Any] | None:
        return self._meta

    def put_init(self, rendition: str, init_id: int, data: bytes) -> None:
        self._init[rendition, init_id] = data

    def get_init(self, rendition: str, init_id: int) -> bytes | None:
        return self._init.get((rendition, init_id))

    def put_segment(self, rendition: str, record: SegmentRecord, data: bytes) -> None:
        with self._lock:
            self._seg[rendition, record.msn] = data
            self._records.setdefault(rendition, []).append(record)

    def get_segment(self, rendition: str, msn: int) -> bytes | None:
        return self._seg.get((rendition, msn))

    def segments(self, rendition: str) -> list[SegmentRecord]:
        with self._lock:
            return list(self._records.get(rendition, []))


class DiskStore:
    """Files under one production's directory (see module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._records: dict[str, list[SegmentRecord]] = {}

    def _dir(self, rendition: str) -> Path:
        d = self.root / rendition
        d.mkdir(exist_ok=True)
        return d

    def put_meta(self, meta: dict[str, Any]) -> None:
        _atomic_write(self.root / "meta.json", json.dumps(meta, indent=1).encode())

    def get_meta(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / "meta.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put_init(self, rendition: str, init_id: int, data: bytes) -> None:
        _atomic_write(self._dir(rendition) / f"init{init_id}.mp4", data)

    def get_init(self, rendition: str, init_id: int) -> bytes | None:
        return _read(self.root / rendition / f"init{init_id}.mp4")

    def put_segment(self, rendition: str, record: SegmentRecord, data: bytes) -> None:
        d = self._dir(rendition)
        _atomic_write(d / f"seg{record.msn}.m4s", data)
        with self._lock:
            with open(d / "segments.jsonl", "a") as f:
                f.write(json.dumps(asdict(record)) + "\n")
            if rendition in self._records:
                self._records[rendition].append(record)

    def get_segment(self, rendition: str, msn: int) -> bytes | None:
        return _read(self.root / rendition / f"seg{msn}.m4s")

    def segments(self, rendition: str) -> list[SegmentRecord]:
        with self._lock:
            if rendition not in self._records:
                recs = []
                try:
                    with open(self.root / rendition / "segments.jsonl") as f:
                        for line in f:
                            try:
                                recs.append(SegmentRecord(**json.loads(line)))
                            except (ValueError, TypeError):
                                continue  # a torn last line after a crash
                except FileNotFoundError:
                    pass
                self._records[rendition] = recs
            return list(self._records[rendition])


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None


class DirectoryPublisher:
    """Plain-file output for nginx/a CDN: ``<root>/<production>/`` mirrors our URL layout.

    Written on every part: ``index.m3u8`` (multivariant), ``<rendition>/index.m3u8`` (full live
    playlist with parts and preload hint), ``init<id>.mp4``, ``part<msn>.<i>.m4s`` (deleted once
    they leave the playlist) and ``seg<msn>.m4s`` (kept). Every file is written to a temp name
    and renamed, so a reader never sees half a file.

    A static server can't hold requests, so clients get no blocking reload (they poll; latency
    is that of plain HLS plus parts). Serve with HTTP/2 (`http2 on;` in nginx), with
    ``Cache-Control: no-cache`` for ``*.m3u8`` and ``max-age=31536000, immutable`` for
    ``*.m4s``/``*.mp4``, and ``Access-Control-Allow-Origin *``; e.g.::

        location /hls/ {
            root /srv/scenecloud;   # output_dir = /srv/scenecloud/hls
            add_header Access-Control-Allow-Origin * always;
            location ~ \\.m3u8$ { add_header Cache-Control no-cache; add_header
                                 Access-Control-Allow-Origin * always; }
            location ~ \\.(m4s|mp4)$ { add_header Cache-Control "max-age=31536000, immutable";
                                      add_header Access-Control-Allow-Origin * always; }
            types { application/vnd.apple.mpegurl m3u8; video/mp4 mp4 m4s; }
        }
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, relpath: str, data: bytes | str) -> None:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, data.encode() if isinstance(data, str) else data)

    def remove(self, relpath: str) -> None:
        try:
            (self.root / relpath).unlink()
        except FileNotFoundError:
            pass
