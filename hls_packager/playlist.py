"""Pure rendering of HLS playlists (RFC 8216bis, LL-HLS) from plain dataclasses.

Live media playlists are EXT-X-VERSION 9 (the lowest that allows EXT-X-SKIP delta updates; the
same version is used for full and delta playlists so a client never sees it change). Replay
(VOD) playlists have no LL-HLS tags and are version 6 (EXT-X-MAP without I-frames-only).

Players that ignore LL-HLS tags (EXT-X-PART, PRELOAD-HINT, ...) see a normal live playlist of
1 s segments with HOLD-BACK 3 target durations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

LIVE_VERSION = 9
VOD_VERSION = 6


def fmt_duration(seconds: float) -> str:
    return f"{seconds:.5f}"


def fmt_pdt(epoch: float) -> str:
    dt = datetime.fromtimestamp(epoch, UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class PartEntry:
    uri: str
    duration: float
    independent: bool = False


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    msn: int
    uri: str
    duration: float
    program_date_time: float | None = None
    discontinuity: bool = False
    map_uri: str = "init.mp4"
    parts: tuple[PartEntry, ...] = ()  # listed only near the live edge


@dataclass(frozen=True, slots=True)
class RenditionReport:
    uri: str
    last_msn: int
    last_part: int | None


@dataclass(frozen=True, slots=True)
class ServerControl:
    """Hold-backs derived from the targets (the spec minimums, see `for_targets`)."""

    part_hold_back: float
    hold_back: float
    can_skip_until: float

    @classmethod
    def for_targets(cls, target_duration: int, part_target: float) -> ServerControl:
        # PART-HOLD-BACK: MUST be >= 2x, SHOULD be >= 3x the part target.
        # HOLD-BACK: >= 3x target duration. CAN-SKIP-UNTIL: >= 6x target duration.
        return cls(round(3 * part_target, 5), 3.0 * target_duration, 6.0 * target_duration)


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    target_duration: int
    media_sequence: int
    segments: tuple[SegmentEntry, ...]
    part_target: float | None = None  # None: no LL-HLS tags
    server_control: ServerControl | None = None
    discontinuity_sequence: int = 0
    # The segment being produced: its tags and parts are listed, without EXTINF/URI.
    pending: SegmentEntry | None = None
    preload_hint: str | None = None
    rendition_reports: tuple[RenditionReport, ...] = ()
    ended: bool = False
    vod: bool = False

    def skippable(self) -> int:
        """How many leading segments a delta update (_HLS_skip=YES) replaces by EXT-X-SKIP."""
        if self.server_control is None or self.ended:
            return 0
        limit = self.server_control.can_skip_until
        # The remaining playlist (after the skipped segments) must span at least CAN-SKIP-UNTIL.
        remaining = sum(s.duration for s in self.segments) + (
            sum(p.duration for p in self.pending.parts) if self.pending else 0.0)
        n = 0
        for s in self.segments:
            if remaining - s.duration < limit - 1e-9:
                break
            remaining -= s.duration
            n += 1
        return n


def render_media_playlist(pl: MediaPlaylist, skip: bool = False,
                          skip_dateranges: bool = False) -> str:
    """Playlist text; `skip` renders a delta update (``_HLS_skip=YES``), `skip_dateranges` the
    ``_HLS_skip=v2`` form. RFC 8216bis 4.4.5.2: RECENTLY-REMOVED-DATERANGES is REQUIRED when the
    client asked to skip EXT-X-DATERANGE tags (v2) and MAY be empty: we never write DATERANGE
    tags, so it is empty, nothing is skipped but segments, and (section 8) version 9 still
    suffices (10 is only for an EXT-X-SKIP that replaces EXT-X-DATERANGE tags)."""
    ll = pl.part_target is not None and not pl.vod
    out = ["#EXTM3U", f"#EXT-X-VERSION:{LIVE_VERSION if ll else VOD_VERSION}",
           f"#EXT-X-TARGETDURATION:{pl.target_duration}"]
    if ll and pl.server_control is not None:
        sc = pl.server_control
        out.append(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
            f"CAN-SKIP-UNTIL={sc.can_skip_until:.1f},"
            f"PART-HOLD-BACK={sc.part_hold_back:.3f},HOLD-BACK={sc.hold_back:.1f}"
        )
    if ll:
        out.append(f"#EXT-X-PART-INF:PART-TARGET={fmt_duration(pl.part_target or 0)}")
    if pl.vod:
        out.append("#EXT-X-PLAYLIST-TYPE:VOD")
    out.append(f"#EXT-X-MEDIA-SEQUENCE:{pl.media_sequence}")
    if pl.discontinuity_sequence:
        out.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{pl.discontinuity_sequence}")
    if not ll:
        out.append("#EXT-X-INDEPENDENT-SEGMENTS")
    skipped = pl.skippable() if (skip and ll) else 0
    if skipped:
        out.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}" + (
            ',RECENTLY-REMOVED-DATERANGES=""' if skip_dateranges else ""))
    current_map: str | None = None
    entries = list(pl.segments[skipped:])
    if ll and pl.pending is not None and pl.pending.parts:
        entries.append(pl.pending)
    for seg in entries:
        if seg.discontinuity:
            out.append("#EXT-X-DISCONTINUITY")
        if seg.map_uri != current_map:
            out.append(f'#EXT-X-MAP:URI="{seg.map_uri}"')
            current_map = seg.map_uri
        if seg.program_date_time is not None:
            out.append(f"#EXT-X-PROGRAM-DATE-TIME:{fmt_pdt(seg.program_date_time)}")
        if ll:
            out.extend(_part_line(p) for p in seg.parts)
        if seg is not pl.pending:
            out.append(f"#EXTINF:{fmt_duration(seg.duration)},")
            out.append(seg.uri)
    if ll:
        if pl.preload_hint and not pl.ended:
            out.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{pl.preload_hint}"')
        for r in pl.rendition_reports:
            line = f'#EXT-X-RENDITION-REPORT:URI="{r.uri}",LAST-MSN={r.last_msn}'
            if r.last_part is not None:
                line += f",LAST-PART={r.last_part}"
            out.append(line)
    if pl.ended:
        out.append("#EXT-X-ENDLIST")
    return "\n".join(out) + "\n"


def _part_line(p: PartEntry) -> str:
    line = f'#EXT-X-PART:DURATION={fmt_duration(p.duration)},URI="{p.uri}"'
    return line + (",INDEPENDENT=YES" if p.independent else "")


@dataclass(frozen=True, slots=True)
class Variant:
    uri: str
    bandwidth: int  # peak segment bit rate, bit/s
    average_bandwidth: int
    width: int
    height: int
    frame_rate: float
    codecs: Sequence[str] = field(default_factory=tuple)


def render_multivariant(variants: Sequence[Variant]) -> str:
    out = ["#EXTM3U", f"#EXT-X-VERSION:{VOD_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in sorted(variants, key=lambda v: -v.bandwidth):
        out.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={v.bandwidth},AVERAGE-BANDWIDTH={v.average_bandwidth},"
            f"RESOLUTION={v.width}x{v.height},FRAME-RATE={v.frame_rate:.3f},"
            f'CODECS="{",".join(v.codecs)}"'
        )
        out.append(v.uri)
    return "\n".join(out) + "\n"


def target_duration_for(durations: Sequence[float], minimum: int = 1) -> int:
    """EXT-X-TARGETDURATION: >= every EXTINF rounded to the nearest integer."""
    return max([minimum, *(math.floor(d + 0.5) for d in durations)])
