"""A/V alignment through the packager: a flash and a click made for the same program frame
come out of the CMAF segments at the same media time (AAC's priming frame is not sent, so the
codec's 1024-sample delay does not put audio 21 ms behind its video)."""

from __future__ import annotations

import asyncio
import io

import av
import numpy as np

from hls_packager.config import HlsConfig, RenditionConfig
from hls_packager.server import Packager
from switcher.program import ProgramFrame, samples_for_frame
from tests.utils import wait_for

FPS = 30
FLASH = 47  # the program frame with the flash and the click (not on a part boundary)


def frame(index: int) -> ProgramFrame:
    w, h = 320, 180
    luma = np.full((h, w), 235 if index == FLASH else 30, np.uint8)
    chroma = np.full((h // 2, w), 128, np.uint8)  # u and v, packed as PyAV's yuv420p array
    video = av.VideoFrame.from_ndarray(np.concatenate([luma, chroma]), format="yuv420p")
    audio = np.zeros((samples_for_frame(index, FPS), 2), np.float32)
    if index == FLASH:  # a 5 ms click from the frame's first sample
        audio[:240] = 0.8
    return ProgramFrame(index, FPS, video, audio, {})


def decode_times(data: bytes) -> tuple[float, float]:
    """(media time of the flash frame, media time of the click's first loud sample), s."""
    flash = click = None
    with av.open(io.BytesIO(data)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        for packet in c.demux(v, a):
            for f in packet.decode():
                t = float(f.pts * f.time_base)
                if isinstance(f, av.VideoFrame):
                    if flash is None and f.to_ndarray()[:180].mean() > 150:
                        flash = t
                elif click is None:
                    loud = np.flatnonzero(np.abs(f.to_ndarray()[0]) > 0.3)
                    if loud.size:
                        click = t + loud[0] / f.sample_rate
    assert flash is not None and click is not None
    return flash, click


async def test_click_and_flash_of_one_frame_play_together():
    cfg = HlsConfig(renditions=(RenditionConfig("lo", 320, 180, 400_000),), preset="ultrafast",
                    queue_frames=64)
    p = Packager("sync", FPS, cfg)
    p.start()
    worker = p._pipelines["lo"].worker
    for i in range(3 * FPS):
        # stay well inside the queue: no frame is dropped
        await wait_for(lambda i=i: i - worker.encoded < 32, 10, "the encoder")
        p.push(frame(i))
    await p.aclose()
    assert worker.dropped == 0
    store = p.store
    data = store.get_init("lo", 0) + b"".join(
        store.get_segment("lo", r.msn) for r in store.segments("lo"))
    flash, click = await asyncio.get_running_loop().run_in_executor(None, decode_times, data)
    assert abs(flash - FLASH / FPS) < 0.001, flash
    # within a millisecond (the click's own rise), not 1024 samples (21.3 ms) late
    assert abs(click - flash) < 0.002, (click - flash) * 1000
