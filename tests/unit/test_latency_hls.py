"""latency_lab.hls (playlist facts) and latency_lab.watcher's pure parts (fragment split)."""

from __future__ import annotations

import pytest

from latency_lab import hls
from latency_lab.watcher import split_fragments

MULTI = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=3200000,RESOLUTION=1280x720,FRAME-RATE=30.000,CODECS="avc1.64001f,mp4a.40.2"
720p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=930600,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2"
360p/index.m3u8
"""

MEDIA = """#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0,PART-HOLD-BACK=0.600
#EXT-X-PART-INF:PART-TARGET=0.20000
#EXT-X-MEDIA-SEQUENCE:67
#EXT-X-MAP:URI="init0.mp4"
#EXTINF:1.00000,
seg67.m4s
#EXT-X-PART:DURATION=0.20000,URI="part68.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI="part68.1.m4s"
#EXT-X-PART:DURATION=0.20000,URI="part68.2.m4s"
#EXT-X-PART:DURATION=0.20000,URI="part68.3.m4s"
#EXT-X-PART:DURATION=0.20000,URI="part68.4.m4s"
#EXTINF:1.00000,
seg68.m4s
#EXT-X-PART:DURATION=0.20000,URI="part69.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI="part69.1.m4s"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part69.2.m4s"
"""


def test_multivariant_choice():
    vs = hls.parse_multivariant(MULTI)
    assert [(v.name, v.bandwidth, v.resolution) for v in vs] == [
        ("720p", 3200000, (1280, 720)), ("360p", 930600, (640, 360))]
    assert hls.choose_variant(vs).name == "360p"  # lowest bandwidth
    assert hls.choose_variant(vs, "720p").uri == "720p/index.m3u8"
    with pytest.raises(ValueError, match=r"no rendition '1080p' .*720p, 360p"):
        hls.choose_variant(vs, "1080p")
    with pytest.raises(ValueError):
        hls.parse_multivariant('{"error": "not_found"}')


def test_media_playlist_positions_and_hint():
    pl = hls.parse_media_playlist(MEDIA)
    assert pl.media_sequence == 67 and pl.can_block and pl.part_target == 0.2
    assert [p.pos for p in pl.parts] == [(68, i) for i in range(5)] + [(69, 0), (69, 1)]
    assert [p.independent for p in pl.parts] == [True, False, False, False, False, True, False]
    assert {p.map_uri for p in pl.parts} == {"init0.mp4"}
    assert pl.segments == [(67, "seg67.m4s"), (68, "seg68.m4s")]
    assert pl.hint is not None and pl.hint.pos == (69, 2) and pl.hint.uri == "part69.2.m4s"
    assert pl.next_position() == (69, 2)
    # a hint right after a complete segment is part 0 of the next one
    text = MEDIA.split("#EXT-X-PART:DURATION=0.20000,URI=\"part69.0")[0]
    pl2 = hls.parse_media_playlist(text + '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part69.0.m4s"\n')
    assert pl2.hint.pos == (69, 0)
    # without a hint: after the last listed part (closed segment → next segment)
    pl3 = hls.parse_media_playlist(text)
    assert pl3.hint is None and pl3.next_position() == (69, 0)
    assert hls.resolve("http://h/hls/p/360p/index.m3u8", "part69.2.m4s") == \
        "http://h/hls/p/360p/part69.2.m4s"


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def test_split_fragments_takes_whole_moof_mdat_pairs():
    a = box(b"moof", b"x" * 20) + box(b"mdat", b"y" * 50)
    b = box(b"styp") + box(b"moof", b"z" * 12) + box(b"mdat", b"w" * 9)
    stream = a + b
    buf = bytearray()
    got = []
    for i in range(0, len(stream), 7):  # arrives in arbitrary pieces
        buf += stream[i:i + 7]
        got += split_fragments(buf)
    assert got == [a, b] and buf == bytearray()
    buf = bytearray(a[:30])
    assert split_fragments(buf) == [] and len(buf) == 30
    with pytest.raises(ValueError):
        split_fragments(bytearray(b"\x00\x00\x00\x03moof"))
