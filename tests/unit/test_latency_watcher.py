"""latency_lab.watcher.Decoder on a CMAF stream made here: stamps, pts and beeps come back, and
the A/V offset of an in-sync stream measures ~0."""

from __future__ import annotations

import fractions
import io
import time

import av
import numpy as np

from latency_lab import report, stamp
from latency_lab.watcher import Decoder, split_fragments

T0 = 1_700_000_000_250.0  # capture time of frame 0 / audio sample 0 (ms)


def cmaf(seconds: int = 3, fps: int = 30) -> tuple[bytes, list[bytes]]:
    """init + fragments (200 ms) of H.264 + AAC carrying stamps and beeps on one clock."""
    buf = io.BytesIO()
    out = av.open(buf, "w", format="mp4", options={
        "movflags": "frag_keyframe+empty_moov+default_base_moof", "frag_duration": "200000"})
    vs = out.add_stream("libx264", rate=fps)
    vs.width, vs.height, vs.pix_fmt, vs.bit_rate = 320, 180, "yuv420p", 200_000
    vs.options = {"bf": "0", "tune": "zerolatency", "preset": "ultrafast", "g": str(fps)}
    as_ = out.add_stream("aac", rate=48000, layout="stereo")
    apts = 0
    for n in range(seconds * fps):
        f = av.VideoFrame.from_ndarray(
            stamp.stamped_yuv(320, 180, round(T0 + n * 1000 / fps)), format="yuv420p")
        f.pts, f.time_base = n, fractions.Fraction(1, fps)
        for p in vs.encode(f):
            out.mux(p)
        while apts < (n + 1) * 48000 // fps:
            mono = stamp.beep_signal(T0, apts, 1024)
            af = av.AudioFrame.from_ndarray(np.stack([mono, mono]), format="fltp",
                                            layout="stereo")
            af.sample_rate, af.pts, af.time_base = 48000, apts, fractions.Fraction(1, 48000)
            apts += 1024
            for p in as_.encode(af):
                out.mux(p)
    for s in (vs, as_):
        for p in s.encode(None):
            out.mux(p)
    out.close()
    data = buf.getvalue()
    cut = data.find(b"moof") - 4
    rest = bytearray(data[cut:])
    return data[:cut], split_fragments(rest)


def test_decoder_reads_stamps_pts_and_beeps():
    init, frags = cmaf()
    assert len(frags) >= 10
    d = Decoder()
    d.set_init(init)
    samples, onsets = [], []
    for k, fr in enumerate(frags):
        t = time.time()
        s, o = d.decode(fr, t, (0, k))
        samples += s
        onsets += o
        assert all(x.received == t and x.decoded >= t for x in s)
    assert d.errors == 0 and len(samples) == 90
    assert [x.capture_ms for x in samples] == [round(T0 + n * 1000 / 30) for n in range(90)]
    pts = [x.pts for x in samples]
    assert pts == sorted(pts)
    assert len(onsets) == 3  # beeps at capture .000 of three seconds
    offsets = report.av_offsets(samples, onsets)
    assert len(offsets) == 3
    assert all(abs(o) < 3 for o in offsets), offsets  # in sync: ~0 ms
    # a broken fragment is not fatal
    assert d.decode(b"\x00\x00\x00\x10moofjunkjunk", time.time(), (9, 9)) == ([], [])
