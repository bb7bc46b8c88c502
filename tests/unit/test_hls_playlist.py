"""Playlist rendering: exact text, the m3u8 parser, and our RFC 8216bis rule checker."""

from __future__ import annotations

import m3u8

from hls_packager.playlist import (
    MediaPlaylist,
    PartEntry,
    RenditionReport,
    SegmentEntry,
    ServerControl,
    Variant,
    fmt_pdt,
    render_media_playlist,
    render_multivariant,
    target_duration_for,
)
from hls_packager.validate import check_media_playlist, check_playlist_update

T0 = 1767225600.0  # 2026-01-01T00:00:00Z
SC = ServerControl.for_targets(1, 0.2)


def parts(msn: int, n: int = 5) -> tuple[PartEntry, ...]:
    return tuple(PartEntry(f"part{msn}.{i}.m4s", 0.2, i == 0) for i in range(n))


def live(first: int, count: int, pending: int = 2, **kw) -> MediaPlaylist:
    segs = tuple(
        SegmentEntry(m, f"seg{m}.m4s", 1.0, T0 + m, map_uri="init0.mp4",
                     parts=parts(m) if m >= first + count - 2 else ())
        for m in range(first, first + count)
    )
    nxt = first + count
    return MediaPlaylist(
        target_duration=1, media_sequence=first, segments=segs, part_target=0.2,
        server_control=SC,
        pending=SegmentEntry(nxt, "", 0.0, T0 + nxt, map_uri="init0.mp4",
                             parts=parts(nxt, pending)),
        preload_hint=f"part{nxt}.{pending}.m4s",
        rendition_reports=(RenditionReport("../360p/index.m3u8", nxt, pending - 1),),
        **kw,
    )


EXPECTED = """#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0,PART-HOLD-BACK=0.600,HOLD-BACK=3.0
#EXT-X-PART-INF:PART-TARGET=0.20000
#EXT-X-MEDIA-SEQUENCE:4
#EXT-X-MAP:URI="init0.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:04.000Z
#EXTINF:1.00000,
seg4.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:05.000Z
#EXT-X-PART:DURATION=0.20000,URI="part5.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI="part5.1.m4s"
#EXT-X-PART:DURATION=0.20000,URI="part5.2.m4s"
#EXT-X-PART:DURATION=0.20000,URI="part5.3.m4s"
#EXT-X-PART:DURATION=0.20000,URI="part5.4.m4s"
#EXTINF:1.00000,
seg5.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:06.000Z
#EXT-X-PART:DURATION=0.20000,URI="part6.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI="part6.1.m4s"
#EXT-X-PART:DURATION=0.20000,URI="part6.2.m4s"
#EXT-X-PART:DURATION=0.20000,URI="part6.3.m4s"
#EXT-X-PART:DURATION=0.20000,URI="part6.4.m4s"
#EXTINF:1.00000,
seg6.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:07.000Z
#EXT-X-PART:DURATION=0.20000,URI="part7.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI="part7.1.m4s"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part7.2.m4s"
#EXT-X-RENDITION-REPORT:URI="../360p/index.m3u8",LAST-MSN=7,LAST-PART=1
"""


def test_live_playlist_exact_text():
    text = render_media_playlist(live(4, 3))
    assert text == EXPECTED
    assert check_media_playlist(text) == []


def test_live_playlist_parses_with_m3u8():
    pl = m3u8.loads(render_media_playlist(live(4, 3)))
    assert pl.version == 9 and pl.target_duration == 1 and pl.media_sequence == 4
    assert pl.server_control.can_block_reload == "YES"
    assert pl.server_control.part_hold_back == 0.6
    assert pl.server_control.can_skip_until == 6.0
    assert pl.part_inf.part_target == 0.2
    assert [s.uri for s in pl.segments] == ["seg4.m4s", "seg5.m4s", "seg6.m4s", None]
    assert [p.uri for p in pl.segments[1].parts][:2] == ["part5.0.m4s", "part5.1.m4s"]
    assert pl.segments[1].parts[0].independent == "YES"
    assert pl.preload_hint.uri == "part7.2.m4s"
    assert pl.rendition_reports[0].last_msn == 7
    assert pl.segments[0].init_section.uri == "init0.mp4"


def test_delta_update_skips_segments_older_than_can_skip_until():
    full = live(10, 8)
    assert full.skippable() == 2  # 8.4 s listed, 6 s must remain after the skipped ones
    text = render_media_playlist(full, skip=True)
    assert "#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n" in text
    assert "seg11.m4s" not in text and "seg12.m4s" in text
    assert text.index("#EXT-X-SKIP") < text.index("#EXT-X-MAP")
    assert check_media_playlist(text) == []
    assert render_media_playlist(live(4, 3), skip=True) == EXPECTED  # too short to skip
    assert check_playlist_update(render_media_playlist(full), text) == []


def test_discontinuity_and_map_change():
    segs = (
        SegmentEntry(0, "seg0.m4s", 0.5, T0, map_uri="init0.mp4"),
        SegmentEntry(1, "seg1.m4s", 1.0, T0 + 10, discontinuity=True, map_uri="init1.mp4"),
    )
    text = render_media_playlist(MediaPlaylist(1, 0, segs, discontinuity_sequence=2,
                                               ended=True, vod=True))
    assert text == (
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:2\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init0.mp4"\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z\n'
        "#EXTINF:0.50000,\nseg0.m4s\n"
        '#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init1.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:10.000Z\n#EXTINF:1.00000,\nseg1.m4s\n"
        "#EXT-X-ENDLIST\n"
    )
    pl = m3u8.loads(text)
    assert pl.is_endlist and pl.playlist_type == "vod"
    assert pl.segments[1].discontinuity
    assert check_media_playlist(text) == []


def test_multivariant_exact_text():
    text = render_multivariant([
        Variant("360p/index.m3u8", 800_000, 700_000, 640, 360, 30, ("avc1.4d401e", "mp4a.40.2")),
        Variant("720p/index.m3u8", 3_000_000, 2_600_000, 1280, 720, 30,
                ("avc1.64001f", "mp4a.40.2")),
    ])
    assert text == (
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2600000,RESOLUTION=1280x720,"
        'FRAME-RATE=30.000,CODECS="avc1.64001f,mp4a.40.2"\n720p/index.m3u8\n'
        "#EXT-X-STREAM-INF:BANDWIDTH=800000,AVERAGE-BANDWIDTH=700000,RESOLUTION=640x360,"
        'FRAME-RATE=30.000,CODECS="avc1.4d401e,mp4a.40.2"\n360p/index.m3u8\n'
    )
    pl = m3u8.loads(text)
    assert pl.is_variant
    assert pl.playlists[0].stream_info.average_bandwidth == 2_600_000


def test_rule_checker_catches_violations():
    bad = EXPECTED.replace("PART-HOLD-BACK=0.600", "PART-HOLD-BACK=0.300").replace(
        "HOLD-BACK=3.0", "HOLD-BACK=1.0").replace("CAN-SKIP-UNTIL=6.0", "CAN-SKIP-UNTIL=2.0")
    bad = bad.replace('DURATION=0.20000,URI="part5.1.m4s"', 'DURATION=0.25000,URI="part5.1.m4s"')
    bad = bad.replace("#EXTINF:1.00000,\nseg5", "#EXTINF:1.60000,\nseg5")
    bad = bad.replace('URI="part6.0.m4s",INDEPENDENT=YES', 'URI="part6.0.m4s"')
    errors = "\n".join(check_media_playlist(bad))
    for needle in ("PART-HOLD-BACK 0.300", "HOLD-BACK 1.0", "CAN-SKIP-UNTIL 2.0",
                   "part5.1.m4s: part DURATION 0.25", "seg5.m4s: EXTINF 1.6",
                   "seg6.m4s: first part is not INDEPENDENT"):
        assert needle in errors
    older = render_media_playlist(live(5, 3))
    newer = render_media_playlist(live(4, 3))
    assert "MEDIA-SEQUENCE went back" in "\n".join(check_playlist_update(older, newer))
    assert check_media_playlist("#EXT-X-VERSION:9\n") == [
        "unparsable: playlist does not start with #EXTM3U"]


def test_helpers():
    assert fmt_pdt(T0 + 0.25) == "2026-01-01T00:00:00.250Z"
    assert target_duration_for([1.0, 1.49, 0.2]) == 1
    assert target_duration_for([2.5]) == 3
