"""Pure: the few LL-HLS playlist facts a low-latency client needs (RFC 8216bis).

Multivariant: variants (URI, BANDWIDTH, RESOLUTION). Media playlist: media sequence, parts with
their (msn, index) position, INDEPENDENT flag and the EXT-X-MAP in force, the preload hint's
position, ENDLIST. Positions are counted from the playlist (segment URIs seen since
EXT-X-MEDIA-SEQUENCE), not read out of URI names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def attributes(text: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _ATTR.findall(text)}


@dataclass(frozen=True)
class Variant:
    uri: str
    bandwidth: int
    resolution: tuple[int, int] | None
    name: str  # NAME attribute if any, else the first path component of the URI

    def matches(self, name: str) -> bool:
        return name in (self.name, self.uri, self.uri.split("/")[0])


def parse_multivariant(text: str) -> list[Variant]:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("not an M3U8 playlist (no #EXTM3U)")
    out = []
    for i, ln in enumerate(lines):
        if ln.startswith("#EXT-X-STREAM-INF:") and i + 1 < len(lines):
            a = attributes(ln.split(":", 1)[1])
            uri = lines[i + 1]
            res = None
            if "RESOLUTION" in a:
                w, h = a["RESOLUTION"].lower().split("x")
                res = (int(w), int(h))
            out.append(Variant(uri, int(a.get("BANDWIDTH", 0)), res,
                               a.get("NAME") or uri.split("/")[0]))
    return out


def choose_variant(variants: list[Variant], name: str | None = None) -> Variant:
    """The named rendition, else the lowest bandwidth one (what a cautious player starts on)."""
    if not variants:
        raise ValueError("the multivariant playlist lists no renditions")
    if name:
        for v in variants:
            if v.matches(name):
                return v
        names = ", ".join(v.name for v in variants)
        raise ValueError(f"no rendition {name!r} (there are: {names})")
    return min(variants, key=lambda v: v.bandwidth)


@dataclass(frozen=True)
class PartRef:
    msn: int
    index: int
    uri: str
    duration: float
    independent: bool
    map_uri: str | None

    @property
    def pos(self) -> tuple[int, int]:
        return (self.msn, self.index)


@dataclass
class MediaPlaylist:
    media_sequence: int = 0
    parts: list[PartRef] = field(default_factory=list)
    segments: list[tuple[int, str]] = field(default_factory=list)  # (msn, uri)
    map_uri: str | None = None  # the newest EXT-X-MAP
    hint: PartRef | None = None  # the preload-hinted part (duration 0, position computed)
    part_target: float | None = None
    can_block: bool = False
    ended: bool = False

    def next_position(self) -> tuple[int, int]:
        """Where the next part will be: the hint's, else after the last listed part."""
        if self.hint is not None:
            return self.hint.pos
        if self.parts:
            last = self.parts[-1]
            done = any(m == last.msn for m, _ in self.segments)
            return (last.msn + 1, 0) if done else (last.msn, last.index + 1)
        return (self.media_sequence + len(self.segments), 0)


def parse_media_playlist(text: str) -> MediaPlaylist:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("not an M3U8 playlist (no #EXTM3U)")
    pl = MediaPlaylist()
    msn = None
    index = 0
    map_uri = None
    expect_uri = False
    for ln in lines[1:]:
        if ln.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            pl.media_sequence = int(ln.split(":", 1)[1])
        elif ln.startswith("#EXT-X-MAP:"):
            map_uri = attributes(ln.split(":", 1)[1]).get("URI")
            pl.map_uri = map_uri
        elif ln.startswith("#EXT-X-PART-INF:"):
            pl.part_target = float(attributes(ln.split(":", 1)[1]).get("PART-TARGET", "0"))
        elif ln.startswith("#EXT-X-SERVER-CONTROL:"):
            pl.can_block = attributes(ln.split(":", 1)[1]).get("CAN-BLOCK-RELOAD") == "YES"
        elif ln.startswith("#EXT-X-SKIP:"):
            raise ValueError("delta playlists (EXT-X-SKIP) are not supported here")
        elif ln.startswith("#EXT-X-PART:"):
            if msn is None:
                msn = pl.media_sequence
            a = attributes(ln.split(":", 1)[1])
            pl.parts.append(PartRef(msn, index, a["URI"], float(a.get("DURATION", 0)),
                                    a.get("INDEPENDENT") == "YES", map_uri))
            index += 1
        elif ln.startswith("#EXT-X-PRELOAD-HINT:"):
            a = attributes(ln.split(":", 1)[1])
            if a.get("TYPE") == "PART":
                m = pl.media_sequence if msn is None else msn
                pl.hint = PartRef(m, index, a["URI"], 0.0, False, map_uri)
        elif ln.startswith("#EXTINF:"):
            expect_uri = True
        elif ln == "#EXT-X-ENDLIST":
            pl.ended = True
        elif not ln.startswith("#") and expect_uri:
            m = pl.media_sequence if msn is None else msn
            pl.segments.append((m, ln))
            msn, index, expect_uri = m + 1, 0, False
    return pl


def resolve(base: str, uri: str) -> str:
    return urljoin(base, uri)
