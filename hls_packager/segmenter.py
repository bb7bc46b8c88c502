"""Pure cutting of encoded frames into LL-HLS parts and segments, and the live window.

The grid is frame-exact and comes from the program frame index: with ``o`` the first frame of the
run, segment ``k`` holds frames ``o + [k*S, (k+1)*S)`` and its part ``j`` frames ``o + [k*S + j*P,
k*S + (j+1)*P)`` (S = frames per segment == GOP, P = frames per part). A part is closed as soon as
its last frame is encoded (no waiting for the next frame). Every segment starts with a keyframe
(the encoder forces one on the first frame of each segment), so the first part of a segment is
INDEPENDENT.

A part is made of CMAF chunks (one ``moof`` + ``mdat`` each) of `chunk_frames` video frames:
while a part is being produced, every finished chunk is emitted as a `Chunk` event, so a server
can stream the preload-hinted part's bytes as they are produced (chunked transfer); the `Part`
that follows holds the same bytes (``Part.data`` starts with the chunks already emitted). A
chunk is emitted as soon as its last frame is encoded, that sample lasting one frame (the
output clock is fixed), like a part's last sample; only a frame the encoder queue dropped right
after a chunk (overload, counted) leaves a hole of its length in the video timeline — waiting
for the next frame instead cost every frame 1–2 frame intervals (~50 ms at 30 fps) of latency.
Frames dropped inside a chunk or part leave no hole (durations span the gap). The part's last
chunk goes out with the `Part` itself. ``chunk_frames=0``: one fragment per part, no `Chunk`
events.

`Segmenter` runs in the encoder thread; `LiveWindow` is owned by the event loop (parts are
handed over with ``loop.call_soon_threadsafe``). Neither does I/O.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from hls_packager.config import Timing
from hls_packager.encoder import EncodedAudio, EncodedFrame
from hls_packager.fmp4 import AUDIO_TRACK_ID, VIDEO_TRACK_ID, Sample, TrackRun, media_fragment

AUDIO_TIMESCALE = 48000
# Video frames per CMAF chunk inside a part: 1 = every frame can be sent the moment it is
# encoded, for ~26 kbit/s of moof overhead (+4 % on the 360p rendition, +1 % on 720p);
# 2 frames: half that, but the first frame of each chunk waits for the second.
DEFAULT_CHUNK_FRAMES = 1


def video_timescale(fps: int) -> int:
    return 90000 if 90000 % fps == 0 else fps * 1000


@dataclass(frozen=True, slots=True)
class Part:
    msn: int
    index: int  # part number inside its segment, from 0
    data: bytes  # one CMAF chunk: moof + mdat
    duration: float  # seconds (video-driven)
    independent: bool  # starts with an IDR frame
    first_frame: int
    frames: int
    # Wall-clock marks of every video frame in the part (for latency figures).
    marks: tuple[dict[str, float], ...] = ()
    # Of the segment the part belongs to (needed to list parts of an in-progress segment).
    program_date_time: float = 0.0
    discontinuity: bool = False
    init_id: int = 0


@dataclass(frozen=True, slots=True)
class Chunk:
    """A finished CMAF chunk of a part still being produced (the part's bytes so far grow by
    `data`); the `Part` event that completes it holds these bytes again as its prefix."""

    msn: int
    index: int  # the part's index inside its segment
    data: bytes
    # Wall-clock marks of the video frames in this chunk (the same dicts the Part carries).
    marks: tuple[dict[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Segment:
    msn: int
    parts: tuple[Part, ...]
    duration: float
    program_date_time: float  # wall clock (epoch s) of the first frame
    discontinuity: bool = False
    init_id: int = 0  # which init segment (EXT-X-MAP) its fragments need
    first_frame: int = 0

    @property
    def data(self) -> bytes:
        return b"".join(p.data for p in self.parts)

    @property
    def size(self) -> int:
        return sum(len(p.data) for p in self.parts)


@dataclass(slots=True)
class _OpenPart:
    start: int  # first frame index actually present
    end: int  # grid end (exclusive)
    video: list[tuple[int, bytes, bool]] = field(default_factory=list)
    audio: list[EncodedAudio] = field(default_factory=list)
    marks: list[dict[str, float]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)  # emitted as Chunk events
    video_done: int = 0  # video frames already in `chunks`
    audio_done: int = 0  # audio frames already in `chunks`


@dataclass(slots=True)
class _OpenSegment:
    msn: int
    number: int  # (index - origin) // segment_frames
    pdt: float
    first_frame: int
    discontinuity: bool
    parts: list[Part] = field(default_factory=list)


class Segmenter:
    """EncodedFrame stream in, (Chunk | Part | Segment) events out, in publication order."""

    def __init__(self, timing: Timing, base_msn: int = 0, origin: int = 0,
                 discontinuity: bool = False, init_id: int = 0, fragment_seq: int = 1,
                 min_msn: int = 0, chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> None:
        if chunk_frames < 0:
            raise ValueError("chunk_frames: must be >= 0")
        self.timing = timing
        self.chunk_frames = chunk_frames
        self.vts = video_timescale(timing.fps)
        self.frame_ticks = self.vts // timing.fps
        # msn = base_msn + (index - origin) // segment_frames, and the part grid starts at
        # `origin` (the run's first frame): the same frame gets the same msn and part in every
        # rendition (both set per run by the packager, shared by all renditions).
        self.base_msn = base_msn
        self.origin = origin
        self.min_msn = min_msn  # frames of earlier segments are skipped (after a restart)
        self.last_msn: int | None = None
        self.init_id = init_id
        self._discontinuity = discontinuity
        self._seq = fragment_seq
        self._seg: _OpenSegment | None = None
        self._part: _OpenPart | None = None
        self._pending_audio: list[EncodedAudio] = []

    def add(self, ef: EncodedFrame) -> list[Chunk | Part | Segment]:
        t = self.timing
        events: list[Chunk | Part | Segment] = []
        if ef.last:
            if self._part is not None:
                if ef.audio:
                    self._part.audio.extend(ef.audio)
                events += self._close_part(run_end=True)
            if self._seg is not None:
                events += self._close_segment()
            return events
        rel = ef.index - self.origin
        if rel < 0 or self.base_msn + rel // t.segment_frames < self.min_msn:
            return events
        if not ef.video:  # nothing came out of the video encoder: keep the audio for later
            self._pending_audio.extend(ef.audio)
            return events
        if self._part is not None and ef.index >= self._part.end:
            events += self._close_part()
        if self._seg is not None and rel // t.segment_frames != self._seg.number:
            events += self._close_segment()
        if self._seg is None:
            pdt = ef.marks.get("tick") or ef.marks.get("encoded") or time.time()
            number = rel // t.segment_frames
            self._seg = _OpenSegment(self.base_msn + number, number, pdt, ef.index,
                                     self._discontinuity)
            self._discontinuity = False
            self.last_msn = self._seg.msn
        if self._part is None:
            in_seg = rel % t.segment_frames
            end = ef.index - in_seg + (in_seg // t.part_frames + 1) * t.part_frames
            self._part = _OpenPart(ef.index, end)
            if self._pending_audio:
                self._part.audio.extend(self._pending_audio)
                self._pending_audio = []
        self._part.video.append((ef.index, ef.video, ef.is_key))
        self._part.audio.extend(ef.audio)
        self._part.marks.append(ef.marks)
        if ef.index == self._part.end - 1:
            events += self._close_part()
            if self._part is None and (rel + 1) % t.segment_frames == 0:
                events += self._close_segment()
        elif self.chunk_frames:
            op = self._part
            if len(op.video) - op.video_done >= self.chunk_frames:  # full: out it goes
                assert self._seg is not None
                first = op.video_done
                data = self._fragment(op, len(op.video), op.video[-1][0] + 1)
                op.chunks.append(data)
                events.append(Chunk(self._seg.msn, len(self._seg.parts), data,
                                    tuple(op.marks[first:op.video_done])))
        return events

    def _fragment(self, op: _OpenPart, upto: int, last_next: int | None) -> bytes:
        """One moof+mdat of the part's video frames [video_done, upto) and the audio not yet
        written (b"" when there is neither); `last_next` is the frame index after the last
        one (else the next frame's)."""
        ft = self.frame_ticks
        video = op.video[op.video_done : upto]
        vsamples = []
        for k, (idx, data, key) in enumerate(video):
            nxt = op.video[op.video_done + k + 1][0] if k + 1 < len(video) or last_next is None \
                else last_next
            vsamples.append(Sample(data, (nxt - idx) * ft, key))
        runs = [TrackRun(VIDEO_TRACK_ID, video[0][0] * ft, vsamples)] if video else []
        audio = op.audio[op.audio_done :]
        if audio:
            runs.append(TrackRun(AUDIO_TRACK_ID, audio[0].time,
                                 [Sample(a.data, a.duration, True) for a in audio]))
        op.video_done = upto
        op.audio_done = len(op.audio)
        if not runs:  # everything already went out in chunks
            return b""
        data = media_fragment(self._seq, runs)
        self._seq += 1
        return data

    def _close_part(self, run_end: bool = False) -> list[Chunk | Part | Segment]:
        op, seg = self._part, self._seg
        assert op is not None and seg is not None
        self._part = None
        if not op.video:
            return []
        end_frame = op.video[-1][0] + 1 if run_end else op.end
        last = self._fragment(op, len(op.video), end_frame)
        data = b"".join([*op.chunks, last])
        part = Part(seg.msn, len(seg.parts), data, (end_frame - op.start) / self.timing.fps,
                    op.video[0][2], op.start, end_frame - op.start, tuple(op.marks),
                    seg.pdt, seg.discontinuity, self.init_id)
        seg.parts.append(part)
        return [part]

    def _close_segment(self) -> list[Chunk | Part | Segment]:
        seg = self._seg
        assert seg is not None
        self._seg = None
        if not seg.parts:
            return []
        return [Segment(seg.msn, tuple(seg.parts), sum(p.duration for p in seg.parts), seg.pdt,
                        seg.discontinuity, self.init_id, seg.first_frame)]

    @property
    def fragment_seq(self) -> int:
        return self._seq


class LiveWindow:
    """The last N complete segments plus the parts of the segment being produced."""

    def __init__(self, window_segments: int = 7, part_segments: int = 3) -> None:
        self.window_segments = window_segments
        # Parts are listed (and kept fetchable) for the newest `part_segments` segments.
        self.part_segments = part_segments
        self.segments: deque[Segment] = deque()
        self.current: list[Part] = []  # parts of the in-progress segment
        self.current_msn: int | None = None
        self.discontinuity_sequence = 0
        self.ended = False
        self._current_discontinuity = False

    # ------------------------------------------------------------------ updates
    def add_part(self, part: Part) -> None:
        if self.current_msn != part.msn:
            self.current = []
            self.current_msn = part.msn
        self.current.append(part)

    def add_segment(self, seg: Segment) -> None:
        self.segments.append(seg)
        if self.current_msn == seg.msn:
            self.current = []
            self.current_msn = None
        while len(self.segments) > self.window_segments:
            old = self.segments.popleft()
            if old.discontinuity:  # its EXT-X-DISCONTINUITY leaves the playlist with it
                self.discontinuity_sequence += 1

    # ------------------------------------------------------------------ queries
    @property
    def media_sequence(self) -> int:
        if self.segments:
            return self.segments[0].msn
        return self.current_msn or 0

    @property
    def last_part(self) -> tuple[int, int] | None:
        """(msn, part index) of the newest published part."""
        if self.current:
            p = self.current[-1]
            return p.msn, p.index
        if self.segments:
            s = self.segments[-1]
            return s.msn, len(s.parts) - 1
        return None

    @property
    def next_part(self) -> tuple[int, int] | None:
        """(msn, part) the preload hint points at: the part that will be published next."""
        if self.ended:
            return None
        if self.current:
            p = self.current[-1]
            return p.msn, p.index + 1
        if self.segments:
            return self.segments[-1].msn + 1, 0
        return None

    @property
    def last_msn(self) -> int | None:
        if self.current_msn is not None:
            return self.current_msn
        return self.segments[-1].msn if self.segments else None

    def has(self, msn: int, part: int | None) -> bool:
        """Is segment `msn` complete (part None), or part `part` of it published (or past)?

        RFC 8216bis 6.2.5.2: a Part Index beyond the final part of a (complete) Parent Segment
        is a request for part 0 of the following segment."""
        if part is None:
            return bool(self.segments) and self.segments[-1].msn >= msn
        seg = self.segment(msn)
        if seg is not None and part >= len(seg.parts):
            msn, part = msn + 1, 0
        lp = self.last_part
        return lp is not None and (lp[0] > msn or (lp[0] == msn and lp[1] >= part))

    @property
    def last_complete_msn(self) -> int | None:
        """msn of the last segment listed with a URI (the in-progress one only has parts)."""
        if self.segments:
            return self.segments[-1].msn
        return self.current_msn - 1 if self.current_msn is not None else None

    def segment(self, msn: int) -> Segment | None:
        for s in self.segments:
            if s.msn == msn:
                return s
        return None

    def part(self, msn: int, index: int) -> Part | None:
        if msn == self.current_msn:
            return self.current[index] if 0 <= index < len(self.current) else None
        seg = self.segment(msn)
        if seg is None or not self.parts_listed(seg.msn):
            return None
        return seg.parts[index] if 0 <= index < len(seg.parts) else None

    def parts_listed(self, msn: int) -> bool:
        """Parts of a complete segment are listed only for the newest `part_segments`."""
        if not self.segments:
            return False
        return msn > self.segments[-1].msn - self.part_segments
