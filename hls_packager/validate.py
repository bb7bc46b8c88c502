"""Our own RFC 8216bis rule checks for media playlists (where the `m3u8` package doesn't check).

`check_media_playlist(text)` returns a list of violations (empty: fine);
`check_playlist_update(old, new)` checks two successive reloads of one playlist.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_ATTR_RE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def parse_attrs(value: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _ATTR_RE.findall(value)}


@dataclass
class ParsedPlaylist:
    version: int | None = None
    target_duration: int | None = None
    media_sequence: int = 0
    part_target: float | None = None
    server_control: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    segments: list[tuple[float, str, list[tuple[float, str, bool]]]] = field(default_factory=list)
    pending_parts: list[tuple[float, str, bool]] = field(default_factory=list)
    preload_hint: str | None = None
    has_map_before_first_segment: bool = False
    ended: bool = False
    vod: bool = False
    tags: list[str] = field(default_factory=list)


def parse_media_playlist(text: str) -> ParsedPlaylist:
    pl = ParsedPlaylist()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("playlist does not start with #EXTM3U")
    parts: list[tuple[float, str, bool]] = []
    extinf: float | None = None
    seen_map = False
    for ln in lines[1:]:
        if ln.startswith("#"):
            tag, _, value = ln.partition(":")
            pl.tags.append(tag)
            if tag == "#EXT-X-VERSION":
                pl.version = int(value)
            elif tag == "#EXT-X-TARGETDURATION":
                pl.target_duration = int(value)
            elif tag == "#EXT-X-MEDIA-SEQUENCE":
                pl.media_sequence = int(value)
            elif tag == "#EXT-X-PART-INF":
                pl.part_target = float(parse_attrs(value)["PART-TARGET"])
            elif tag == "#EXT-X-SERVER-CONTROL":
                pl.server_control = parse_attrs(value)
            elif tag == "#EXT-X-SKIP":
                pl.skipped = int(parse_attrs(value)["SKIPPED-SEGMENTS"])
            elif tag == "#EXT-X-MAP":
                seen_map = True
            elif tag == "#EXT-X-PART":
                a = parse_attrs(value)
                parts.append((float(a["DURATION"]), a["URI"], a.get("INDEPENDENT") == "YES"))
            elif tag == "#EXTINF":
                extinf = float(value.split(",")[0])
            elif tag == "#EXT-X-PRELOAD-HINT":
                pl.preload_hint = parse_attrs(value).get("URI")
            elif tag == "#EXT-X-ENDLIST":
                pl.ended = True
            elif tag == "#EXT-X-PLAYLIST-TYPE":
                pl.vod = value == "VOD"
        else:
            if extinf is None:
                raise ValueError(f"URI line {ln!r} without #EXTINF")
            if not pl.segments:
                pl.has_map_before_first_segment = seen_map
            pl.segments.append((extinf, ln, parts))
            parts, extinf = [], None
    pl.pending_parts = parts
    return pl


def check_media_playlist(text: str) -> list[str]:
    errors: list[str] = []
    try:
        pl = parse_media_playlist(text)
    except (ValueError, KeyError) as e:
        return [f"unparsable: {e}"]
    td = pl.target_duration
    if td is None:
        return ["EXT-X-TARGETDURATION missing"]
    if pl.segments and not pl.has_map_before_first_segment:
        errors.append("EXT-X-MAP missing before the first segment")
    for dur, uri, _ in pl.segments:
        if math.floor(dur + 0.5) > td:
            errors.append(f"{uri}: EXTINF {dur} rounds above TARGETDURATION {td}")
    if pl.skipped and (pl.version or 0) < 9:
        errors.append("EXT-X-SKIP needs EXT-X-VERSION >= 9")
    all_parts = [p for _, _, ps in pl.segments for p in ps] + pl.pending_parts
    if all_parts or pl.preload_hint:
        pt = pl.part_target
        if pt is None:
            errors.append("EXT-X-PART without EXT-X-PART-INF")
        else:
            for dur, uri, _ in all_parts:
                if dur > pt + 1e-9:
                    errors.append(f"{uri}: part DURATION {dur} > PART-TARGET {pt}")
            for _, uri, ps in pl.segments:
                # every part but a segment's last one should be >= 85% of the part target
                for dur, puri, _ in ps[:-1]:
                    if dur < 0.85 * pt - 1e-9:
                        errors.append(f"{puri}: part DURATION {dur} < 85% of PART-TARGET")
                if ps and not ps[0][2]:
                    errors.append(f"{uri}: first part is not INDEPENDENT (segment must start "
                                  "with a keyframe)")
            sc = pl.server_control
            if "PART-HOLD-BACK" not in sc:
                errors.append("PART-HOLD-BACK missing (required with EXT-X-PART-INF)")
            elif float(sc["PART-HOLD-BACK"]) < 3 * pt - 1e-9:
                errors.append(f"PART-HOLD-BACK {sc['PART-HOLD-BACK']} < 3 x PART-TARGET {pt}")
    sc = pl.server_control
    if "HOLD-BACK" in sc and float(sc["HOLD-BACK"]) < 3 * td:
        errors.append(f"HOLD-BACK {sc['HOLD-BACK']} < 3 x TARGETDURATION")
    if "CAN-SKIP-UNTIL" in sc and float(sc["CAN-SKIP-UNTIL"]) < 6 * td:
        errors.append(f"CAN-SKIP-UNTIL {sc['CAN-SKIP-UNTIL']} < 6 x TARGETDURATION")
    if pl.skipped and "CAN-SKIP-UNTIL" not in sc:
        errors.append("EXT-X-SKIP without CAN-SKIP-UNTIL")
    if pl.ended and pl.preload_hint:
        errors.append("EXT-X-PRELOAD-HINT in an ended playlist")
    return errors


def check_playlist_update(old: str, new: str) -> list[str]:
    """Rules between two successive reloads: media sequence and segments only move forward."""
    a, b = parse_media_playlist(old), parse_media_playlist(new)
    errors = []
    if b.media_sequence < a.media_sequence:
        errors.append(f"MEDIA-SEQUENCE went back {a.media_sequence} -> {b.media_sequence}")
    a_last = a.media_sequence + a.skipped + len(a.segments) - 1
    b_last = b.media_sequence + b.skipped + len(b.segments) - 1
    if b_last < a_last:
        errors.append(f"last segment went back {a_last} -> {b_last}")
    # A segment present in both must keep its URI.
    a_uris = {a.media_sequence + a.skipped + i: s[1] for i, s in enumerate(a.segments)}
    for i, s in enumerate(b.segments):
        msn = b.media_sequence + b.skipped + i
        if msn in a_uris and a_uris[msn] != s[1]:
            errors.append(f"segment {msn} changed URI {a_uris[msn]} -> {s[1]}")
    return errors
