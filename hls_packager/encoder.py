"""Rendition encoders: H.264 (libx264 / h264_nvenc) + AAC-LC, one worker thread each.

`RenditionEncoder` is synchronous and single-threaded (usable directly in tests);
`EncoderWorker` runs one in a thread fed by a small bounded queue that drops the oldest program
frame when the encoder falls behind (counted; its audio is kept so the audio timeline stays
continuous).

Timestamps come from the program frame index, never from input timestamps: video decode time
is ``index`` in units of 1/fps, audio decode time is a running sample count in 1/48000 starting
at the first frame's first sample. Keyframes are forced on the first frame of every segment
(``(index - origin) // segment_frames`` changes), so every rendition cuts its GOPs on the same
frames (`origin` is the run's first frame, set by the packager for all renditions).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from hls_packager.config import RenditionConfig
from hls_packager.fmp4 import AacConfig, AvcConfig, to_avcc_sample
from switcher.program import AUDIO_RATE, ProgramFrame

log = logging.getLogger(__name__)

AAC_FRAME = 1024


@dataclass(frozen=True, slots=True)
class EncodedAudio:
    time: int  # decode time in 1/48000
    data: bytes  # one raw AAC access unit
    duration: int = AAC_FRAME


@dataclass(slots=True)
class EncodedFrame:
    """What one program frame became: a video access unit (AVCC) and 0..n AAC frames."""

    index: int  # program frame index == video decode/presentation time in 1/fps
    video: bytes
    is_key: bool
    audio: list[EncodedAudio]
    marks: dict[str, float] = field(default_factory=dict)  # program marks + 'encoded'
    last: bool = False  # set on the frame produced by flush() (end of run)


def available_video_encoders() -> tuple[str, ...]:
    return tuple(n for n in ("libx264", "h264_nvenc") if n in av.codecs_available)


class RenditionEncoder:
    def __init__(self, rendition: RenditionConfig, fps: int, segment_frames: int,
                 preset: str = "veryfast") -> None:
        self.rendition = rendition
        self.fps = fps
        self.segment_frames = segment_frames
        self.origin = 0
        self._scaler = VideoReformatter()
        self.video_ctx = self._open_video(rendition, fps, segment_frames, preset)
        self.audio_ctx = self._open_audio(rendition.audio_bitrate)
        self.avc = AvcConfig.from_extradata(bytes(self.video_ctx.extradata or b""))
        self.aac = AacConfig(bytes(self.audio_ctx.extradata or b"")) if (
            self.audio_ctx.extradata) else AacConfig.lc(AUDIO_RATE, 2)
        self._last_segment: int | None = None
        self._fifo = np.zeros((0, 2), np.float32)
        self._audio_in = 0  # samples fed to the AAC encoder
        self._audio_out = 0  # AAC frames received from it
        self._audio_base: int | None = None
        self.frames_in = 0

    # ---------------------------------------------------------------- setup
    @staticmethod
    def _open_video(r: RenditionConfig, fps: int, gop: int, preset: str) -> av.VideoCodecContext:
        ctx = av.CodecContext.create(r.encoder, "w")
        ctx.width, ctx.height = r.width, r.height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = Fraction(1, fps)
        ctx.framerate = Fraction(fps, 1)
        ctx.bit_rate = r.video_bitrate
        ctx.gop_size = gop
        ctx.max_b_frames = 0
        ctx.flags |= av.codec.context.Flags.global_header
        kbps = r.peak_video_bitrate // 1000
        if r.encoder == "libx264":
            ctx.options = {
                "preset": preset,
                "tune": "zerolatency",
                "forced-idr": "1",
                "x264-params": (
                    f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:open-gop=0:"
                    f"vbv-maxrate={kbps}:vbv-bufsize={kbps}:rc-lookahead=0"
                ),
            }
        else:  # h264_nvenc
            ctx.options = {
                "preset": "p2", "tune": "ull", "zerolatency": "1", "bf": "0", "forced-idr": "1",
                "rc": "cbr", "maxrate": str(r.peak_video_bitrate),
                "bufsize": str(r.peak_video_bitrate),
            }
        ctx.open()
        return ctx

    @staticmethod
    def _open_audio(bitrate: int) -> av.AudioCodecContext:
        ctx = av.CodecContext.create("aac", "w")
        ctx.sample_rate = AUDIO_RATE
        ctx.layout = "stereo"
        ctx.format = "fltp"
        ctx.bit_rate = bitrate
        ctx.time_base = Fraction(1, AUDIO_RATE)
        ctx.flags |= av.codec.context.Flags.global_header
        ctx.open()
        return ctx

    # ---------------------------------------------------------------- encoding
    def encode(self, pf: ProgramFrame, extra_audio: np.ndarray | None = None) -> EncodedFrame:
        """Encode one program frame. `extra_audio` holds samples of dropped frames before it."""
        self.frames_in += 1
        seg = (pf.index - self.origin) // self.segment_frames
        frame = pf.video
        if frame.width != self.rendition.width or frame.height != self.rendition.height or (
            frame.format.name != "yuv420p"
        ):
            # our own reformatter: frame.reformat() would share the frame's cached SwsContext
            # with every other thread touching this program frame (snapshots, other
            # renditions) -- PyAV crashes or deadlocks on that
            frame = self._scaler.reformat(frame, self.rendition.width, self.rendition.height,
                                          "yuv420p")
        frame.pts = pf.index
        frame.time_base = Fraction(1, pf.fps)
        force = seg != self._last_segment
        frame.pict_type = PictureType.I if force else PictureType.NONE
        self._last_segment = seg
        packets = self.video_ctx.encode(frame)
        data = b"".join(bytes(p) for p in packets)
        is_key = any(p.is_keyframe for p in packets)
        if self._audio_base is None:
            self._audio_base = pf.audio_pts
        audio = pf.audio if extra_audio is None else np.concatenate([extra_audio, pf.audio])
        aac = self._encode_audio(audio)
        marks = dict(pf.marks)
        marks["encoded"] = time.time()
        return EncodedFrame(pf.index, to_avcc_sample(data) if data else b"", is_key, aac, marks)

    def _encode_audio(self, samples: np.ndarray, flush: bool = False) -> list[EncodedAudio]:
        fifo = np.concatenate([self._fifo, samples.astype(np.float32, copy=False)]) if len(
            samples) else self._fifo
        if flush and len(fifo) % AAC_FRAME:
            pad = AAC_FRAME - len(fifo) % AAC_FRAME
            fifo = np.concatenate([fifo, np.zeros((pad, 2), np.float32)])
        n = len(fifo) // AAC_FRAME
        out: list[EncodedAudio] = []
        for k in range(n):
            chunk = np.ascontiguousarray(fifo[k * AAC_FRAME : (k + 1) * AAC_FRAME].T)
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            af.sample_rate = AUDIO_RATE
            af.pts = self._audio_in
            af.time_base = Fraction(1, AUDIO_RATE)
            self._audio_in += AAC_FRAME
            out.extend(self._audio_packets(self.audio_ctx.encode(af)))
        self._fifo = fifo[n * AAC_FRAME :]
        if flush:
            out.extend(self._audio_packets(self.audio_ctx.encode(None)))
        return out

    def _audio_packets(self, packets) -> list[EncodedAudio]:
        out = []
        for p in packets:
            # The encoder's priming frame (pts -1024: the AAC encoder delay) is not sent:
            # timed from the packets' own pts, audio sample s of the run presents at exactly
            # the media time of the video frame it came with. Keeping the priming frame (with
            # no edit list, which players ignore anyway) put all audio 1024 samples (21 ms)
            # behind its video. Only the very first 21 ms of a run decode imperfectly without
            # it, which a viewer joining later never sees either.
            if p.pts is None or p.pts < 0:
                continue
            self._audio_out += 1
            out.append(EncodedAudio((self._audio_base or 0) + int(p.pts), bytes(p)))
        return out

    def flush(self, last_index: int) -> EncodedFrame:
        """Drain both encoders at the end of a run (remaining audio padded to a full frame)."""
        data = b"".join(bytes(p) for p in self.video_ctx.encode(None))
        aac = self._encode_audio(np.zeros((0, 2), np.float32), flush=True)
        return EncodedFrame(last_index, to_avcc_sample(data) if data else b"", False, aac,
                            {"encoded": time.time()}, last=True)


class EncoderWorker:
    """One rendition encoder in a thread; `push` never blocks (drops the oldest, counted)."""

    def __init__(self, encoder: RenditionEncoder, on_frame: Callable[[EncodedFrame], None],
                 queue_frames: int = 4, name: str = "hls-encoder") -> None:
        self.encoder = encoder
        self.on_frame = on_frame
        self.queue_frames = queue_frames
        self.dropped = 0
        self.encoded = 0
        self.failed: BaseException | None = None
        self._queue: deque[tuple[ProgramFrame, list[np.ndarray]]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._last_index: int | None = None
        self._last_drop_log = 0.0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def push(self, pf: ProgramFrame) -> None:
        with self._cond:
            if self._stopping:
                return
            if len(self._queue) >= self.queue_frames:
                old, old_extra = self._queue.popleft()
                self.dropped += 1
                # Keep the dropped frame's audio: it is prepended to the next frame's.
                nxt = self._queue[0][1] if self._queue else None
                carry = [*old_extra, old.audio]
                if nxt is not None:
                    nxt[:0] = carry
                else:
                    self._queue.append((pf, carry))
                    self._cond.notify()
                    self._log_drop()
                    return
                self._log_drop()
            self._queue.append((pf, []))
            self._cond.notify()

    def _log_drop(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_log > 5:
            self._last_drop_log = now
            log.warning("%s: encoder behind, %d frames dropped so far", self._thread.name,
                        self.dropped)

    def stop(self, timeout: float = 10.0) -> None:
        """Encode what is queued, flush the encoders, and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stopping:
                        self._cond.wait()
                    if not self._queue and self._stopping:
                        break
                    pf, extra = self._queue.popleft()
                ex = np.concatenate(extra) if extra else None
                out = self.encoder.encode(pf, ex)
                self._last_index = pf.index
                self.encoded += 1
                self.on_frame(out)
            if self._last_index is not None:
                self.on_frame(self.encoder.flush(self._last_index))
        except BaseException as e:  # logged, surfaced in stats; the packager restarts us
            self.failed = e
            log.exception("%s: encoder thread failed", self._thread.name)
