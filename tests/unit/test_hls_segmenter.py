"""Segmenter numbering/grid and the live window, with fake encoded frames (no encoder)."""

from __future__ import annotations

import struct

from hls_packager.config import HlsConfig, Timing
from hls_packager.encoder import EncodedAudio, EncodedFrame
from hls_packager.fmp4 import iter_boxes
from hls_packager.segmenter import Chunk, LiveWindow, Part, Segment, Segmenter

TIMING = Timing.from_config(HlsConfig(), 30)  # 6-frame parts, 30-frame segments
IDR = b"\x00\x00\x00\x02\x65\x00"
P = b"\x00\x00\x00\x02\x41\x00"


def frame(i: int, key: bool, audio_t: int | None = None) -> EncodedFrame:
    audio = [EncodedAudio(audio_t, b"\x21\x00")] if audio_t is not None else []
    return EncodedFrame(i, IDR if key else P, key, audio, {"tick": 1000.0 + i / 30})


TIMING_FT = 90000 // 30  # one frame in the video timescale


def sample_durations(data: bytes) -> list[int]:
    """The video (track 1) sample durations of a moof+mdat."""
    out: list[int] = []
    for kind, start, end in iter_boxes(data):
        if kind != "moof":
            continue
        for k2, s2, e2 in iter_boxes(data, start, end):
            if k2 != "traf":
                continue
            boxes = {k: (a, b) for k, a, b in iter_boxes(data, s2, e2)}
            track = struct.unpack_from(">I", data, boxes["tfhd"][0] + 4)[0]
            t0 = boxes["trun"][0]
            count = struct.unpack_from(">I", data, t0 + 4)[0]
            if track == 1:  # entries of 16 bytes after version/flags, count, data offset
                out += [struct.unpack_from(">I", data, t0 + 12 + 16 * i)[0]
                        for i in range(count)]
    return out


def run(seg: Segmenter, indices, origin: int = 0) -> list[Part | Segment]:
    out: list[Part | Segment] = []
    for i in indices:
        out += seg.add(frame(i, (i - origin) % 30 == 0, (i - origin) * 1600))
    return out


def test_timing_grid():
    assert (TIMING.part_frames, TIMING.segment_frames, TIMING.parts_per_segment) == (6, 30, 5)
    assert TIMING.target_duration == 1
    t25 = Timing.from_config(HlsConfig(), 25)
    assert (t25.part_frames, t25.segment_frames) == (5, 25)
    t24 = Timing.from_config(HlsConfig(), 24)  # 5-frame parts, segments rounded up to 25
    assert (t24.part_frames, t24.segment_frames, t24.target_duration) == (5, 25, 1)


def test_parts_close_on_their_last_frame_and_segments_on_their_last_part():
    seg = Segmenter(TIMING, chunk_frames=0)
    assert run(seg, range(5)) == []
    (p0,) = run(seg, [5])  # the 6th frame closes part 0 at once
    assert (p0.msn, p0.index, p0.frames, p0.independent) == (0, 0, 6, True)
    events = run(seg, range(6, 30))
    assert [type(e).__name__ for e in events] == ["Part"] * 4 + ["Segment"]
    s0 = events[-1]
    assert (s0.msn, len(s0.parts), s0.duration, s0.program_date_time) == (0, 5, 1.0, 1000.0)
    assert [p.independent for p in s0.parts] == [True, False, False, False, False]
    assert s0.data == b"".join(p.data for p in s0.parts)


def test_msn_from_base_and_origin_and_run_end():
    seg = Segmenter(TIMING, base_msn=40, origin=1000, discontinuity=True, init_id=3)
    events = run(seg, range(1000, 1040), origin=1000)
    segs = [e for e in events if isinstance(e, Segment)]
    assert [s.msn for s in segs] == [40]
    assert segs[0].discontinuity and segs[0].init_id == 3
    end = seg.add(EncodedFrame(1039, b"", False, [], last=True))
    assert [(type(e).__name__, e.msn) for e in end] == [("Part", 41), ("Segment", 41)]
    last_part, last_seg = end
    assert last_part.frames == 4 and abs(last_seg.duration - 10 / 30) < 1e-9
    assert not last_seg.discontinuity  # only the run's first segment


def test_dropped_frames_fill_durations_and_keep_grid():
    seg = Segmenter(TIMING)
    events = run(seg, [0, 1, 2, 4, 5, 8, 9, 10, 11])  # 3, 6 and 7 dropped
    parts = [e for e in events if isinstance(e, Part)]
    assert [(p.index, p.first_frame, p.frames) for p in parts] == [(0, 0, 6), (1, 8, 4)]
    assert abs(parts[1].duration - 4 / 30) < 1e-9


def test_chunks_stream_a_part_and_are_its_prefix():
    seg = Segmenter(TIMING, chunk_frames=2)
    events = run(seg, range(6))
    # a chunk goes out as soon as its last frame is in (no waiting for the next frame)
    assert [type(e).__name__ for e in events] == ["Chunk", "Chunk", "Part"]
    assert [len(seg.add(frame(i, False, i * 1600))) for i in range(6, 9)] == [0, 1, 0]
    c0, c1, part = events
    assert (c0.msn, c0.index, c1.index) == (0, 0, 0)
    assert part.data.startswith(c0.data + c1.data)
    assert [k for k, _, _ in iter_boxes(part.data)] == ["moof", "mdat"] * 3
    # each chunk carries the marks of exactly its frames (the same dicts as the part's)
    assert len(c0.marks) == len(c1.marks) == 2
    assert all(any(m is pm for pm in part.marks) for m in c0.marks + c1.marks)
    assert c0.marks[0] is part.marks[0] and c1.marks[-1] is part.marks[3]
    # one chunk per frame, each out with its frame; a frame dropped after a chunk leaves a
    # hole of its length, one dropped inside a chunk does not (durations span the gap)
    seg1 = Segmenter(TIMING, chunk_frames=1)
    ev = run(seg1, [0, 1, 3, 4, 5])
    assert [type(e).__name__ for e in ev] == ["Chunk"] * 4 + ["Part"]
    assert ev[-1].frames == 6 and ev[-1].data.startswith(b"".join(e.data for e in ev[:4]))
    assert [sample_durations(c.data) for c in ev[:4]] == [[TIMING_FT]] * 4
    seg2 = Segmenter(TIMING, chunk_frames=2)
    ev = run(seg2, [0, 2, 3, 4, 5])  # frame 1 dropped inside the first chunk
    assert sample_durations(ev[0].data) == [2 * TIMING_FT, TIMING_FT]


def test_min_msn_skips_frames_of_earlier_segments():
    seg = Segmenter(TIMING, min_msn=1)
    assert run(seg, range(0, 30)) == []
    events = run(seg, range(30, 36))
    assert [(e.msn, e.index) for e in events if isinstance(e, Part)] == [(1, 0)]


def _segments(n: int, discontinuity_at: int = -1) -> list[Part | Segment]:
    seg = Segmenter(TIMING)
    out: list[Part | Segment] = []
    for i in range(n * 30):
        out += seg.add(frame(i, i % 30 == 0))
    if discontinuity_at >= 0:
        out = [
            Segment(e.msn, e.parts, e.duration, e.program_date_time, True)
            if isinstance(e, Segment) and e.msn == discontinuity_at else e
            for e in out
        ]
    return out


def feed(w: LiveWindow, events) -> None:
    for e in events:
        if isinstance(e, Chunk):
            continue
        if isinstance(e, Part):
            w.add_part(e)
        else:
            w.add_segment(e)


def test_live_window_eviction_lookup_and_has():
    w = LiveWindow(window_segments=7, part_segments=3)
    assert w.last_part is None and w.next_part is None and not w.has(0, 0)
    feed(w, _segments(9, discontinuity_at=1))
    assert [s.msn for s in w.segments] == list(range(2, 9))
    assert w.media_sequence == 2
    assert w.discontinuity_sequence == 1  # segment 1 (with its discontinuity) left the window
    assert w.last_part == (8, 4) and w.next_part == (9, 0)
    assert w.has(8, None) and w.has(8, 4)
    assert not w.has(8, 7)  # beyond the final part of 8: part 0 of segment 9 (RFC 8216bis 6.2.5.2)
    assert w.has(7, 9) and w.last_complete_msn == 8
    assert not w.has(9, None) and not w.has(9, 0)
    assert w.part(8, 0) is not None and w.part(6, 4) is not None
    assert w.part(5, 0) is None  # parts expire before their segment leaves the window
    assert w.segment(2) is not None and w.segment(1) is None
    assert w.part(8, 5) is None


def test_live_window_in_progress_segment():
    w = LiveWindow()
    events = _segments(2)
    feed(w, events[:-1])  # segment 1's parts but not the Segment event
    assert w.current_msn == 1 and len(w.current) == 5
    assert w.last_msn == 1 and w.last_part == (1, 4) and w.next_part == (1, 5)
    assert w.has(1, 4) and not w.has(1, None)
    w.ended = True
    assert w.next_part is None
