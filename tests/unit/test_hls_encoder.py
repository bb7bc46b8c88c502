"""EncoderWorker: bounded queue dropping the oldest frame (counted) while keeping its audio."""

from __future__ import annotations

import threading

from hls_packager.encoder import EncodedFrame, EncoderWorker
from hls_packager.testing import make_program_frame


class SlowFakeEncoder:
    """Blocks on the first frame until released, records what it was given."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.seen: list[tuple[int, int]] = []  # (index, audio samples incl. carried)

    def encode(self, pf, extra_audio=None) -> EncodedFrame:
        self.release.wait(5)
        n = len(pf.audio) + (0 if extra_audio is None else len(extra_audio))
        self.seen.append((pf.index, n))
        return EncodedFrame(pf.index, b"x", False, [])

    def flush(self, last_index: int) -> EncodedFrame:
        return EncodedFrame(last_index, b"", False, [], last=True)


def test_worker_drops_oldest_and_keeps_its_audio():
    enc = SlowFakeEncoder()
    out: list[EncodedFrame] = []
    w = EncoderWorker(enc, out.append, queue_frames=2)  # type: ignore[arg-type]
    frames = [make_program_frame(i, 30, 32, 32) for i in range(6)]
    w.start()
    for f in frames:
        w.push(f)
    enc.release.set()
    w.stop()
    total_audio = sum(len(f.audio) for f in frames)
    assert w.dropped >= 3
    assert sum(n for _, n in enc.seen) == total_audio  # no audio lost with the dropped frames
    assert [i for i, _ in enc.seen][-2:] == [4, 5]  # the newest frames survive
    assert out[-1].last
    assert len(out) == len(enc.seen) + 1
