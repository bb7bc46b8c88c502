"""fMP4 boxes: structure, H.264/AAC configs, and PyAV decoding what we write."""

from __future__ import annotations

import io
import struct

import av
import pytest

from hls_packager.config import HlsConfig, RenditionConfig, Timing
from hls_packager.encoder import RenditionEncoder
from hls_packager.fmp4 import (
    AacConfig,
    AudioTrack,
    AvcConfig,
    Sample,
    TrackRun,
    VideoTrack,
    init_segment,
    iter_boxes,
    media_fragment,
    sample_is_idr,
    split_annexb,
    split_avcc,
    to_avcc_sample,
)
from hls_packager.segmenter import Part, Segment, Segmenter, video_timescale
from hls_packager.testing import program_frames

SPS = bytes.fromhex("6764001facd9405005bb011000000300100000030300f1831960")
PPS = bytes.fromhex("68ebe3cb22c0")


def children(data: bytes, start: int = 0, end: int | None = None) -> dict[str, tuple[int, int]]:
    return {k: (s, e) for k, s, e in iter_boxes(data, start, end)}


def test_annexb_to_avcc_and_back():
    au = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x01" + PPS + b"\x00\x00\x00\x01\x09\xf0" \
        + b"\x00\x00\x01\x65\x88\x80\x00\x01\x02"
    assert split_annexb(au) == [SPS, PPS, b"\x09\xf0", b"\x65\x88\x80\x00\x01\x02"]
    avcc = to_avcc_sample(au)
    # SPS/PPS (in the init segment) and the AUD are dropped, the IDR slice is length-prefixed
    assert split_avcc(avcc) == [b"\x65\x88\x80\x00\x01\x02"]
    assert sample_is_idr(avcc)
    assert to_avcc_sample(avcc) == avcc  # already AVCC: unchanged


def test_avc_config_from_annexb_and_avcc_agree():
    a = AvcConfig.from_extradata(b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x00\x01" + PPS)
    assert a.codec_string == "avc1.64001f"
    record = a.avcc_box()[8:]
    b = AvcConfig.from_extradata(record)
    assert (b.sps, b.pps) == (a.sps, a.pps)
    assert record[:4] == bytes([1, 0x64, 0x00, 0x1F])
    assert record[4] == 0xFF  # 4-byte NAL lengths
    assert record.endswith(bytes([0xFD, 0xF8, 0xF8, 0]))  # high profile: 4:2:0, 8 bit
    with pytest.raises(ValueError):
        AvcConfig.from_extradata(b"")


def test_aac_config():
    lc = AacConfig.lc(48000, 2)
    assert lc.asc == bytes.fromhex("1190")
    assert (lc.object_type, lc.sample_rate, lc.channels) == (2, 48000, 2)
    assert lc.codec_string == "mp4a.40.2"


def test_init_segment_structure():
    avc = AvcConfig((SPS,), (PPS,))
    init = init_segment(VideoTrack(1280, 720, 90000, avc), AudioTrack(48000, AacConfig.lc()))
    top = children(init)
    assert list(top) == ["ftyp", "moov"]
    assert init[8:12] == b"iso6"
    moov = [k for k, _, _ in iter_boxes(init, *top["moov"])]
    assert moov == ["mvhd", "trak", "trak", "mvex"]
    assert init.count(b"avcC") == 1 and init.count(b"esds") == 1
    assert init.count(b"trex") == 2
    for table in (b"stts", b"stsc", b"stco"):
        i = init.index(table)
        assert struct.unpack_from(">I", init, i + 8)[0] == 0  # empty: samples are in moofs
    with pytest.raises(ValueError):
        init_segment(None, None)


def test_media_fragment_offsets_point_into_mdat():
    v = [Sample(b"\x00\x00\x00\x02\x65\x00", 3000, True), Sample(b"\x00\x00\x00\x01\x41", 3000,
                                                                False)]
    a = [Sample(b"\x21\x22\x23", 1024)]
    frag = media_fragment(7, [TrackRun(1, 9000, v), TrackRun(2, 48000, a)])
    top = children(frag)
    assert list(top) == ["moof", "mdat"]
    mdat_start = top["mdat"][0]
    offsets = []
    i = 0
    while (i := frag.find(b"trun", i + 1)) > 0:
        offsets.append(struct.unpack_from(">i", frag, i + 12)[0])  # after count
    assert offsets == [mdat_start, mdat_start + 11]
    assert frag[offsets[1] : offsets[1] + 3] == b"\x21\x22\x23"
    tfdt = frag.index(b"tfdt")
    assert struct.unpack_from(">Q", frag, tfdt + 8)[0] == 9000
    mfhd = frag.index(b"mfhd")
    assert struct.unpack_from(">I", frag, mfhd + 8)[0] == 7
    with pytest.raises(ValueError):
        media_fragment(1, [TrackRun(1, 0, [])])


@pytest.fixture(scope="module")
def encoded():
    r = RenditionConfig("t", 320, 180, 300_000)
    timing = Timing.from_config(HlsConfig(renditions=(r,)), 30)
    enc = RenditionEncoder(r, 30, timing.segment_frames, "ultrafast")
    init = init_segment(VideoTrack(320, 180, video_timescale(30), enc.avc),
                        AudioTrack(48000, enc.aac, 128000))
    seg = Segmenter(timing)
    events = []
    last = 0
    for pf in program_frames(75, 30, 320, 180):
        events += seg.add(enc.encode(pf))
        last = pf.index
    events += seg.add(enc.flush(last))
    parts = [e for e in events if isinstance(e, Part)]
    segments = [e for e in events if isinstance(e, Segment)]
    return init, parts, segments, enc


def test_encoded_output_decodes_with_pyav(encoded):
    init, parts, segments, _ = encoded
    assert [s.msn for s in segments] == [0, 1, 2]
    assert [round(s.duration, 5) for s in segments] == [1.0, 1.0, 0.5]
    assert b"".join(p.data for p in parts) == b"".join(s.data for s in segments)
    data = init + b"".join(s.data for s in segments)
    with av.open(io.BytesIO(data)) as c:
        vs = c.streams.video[0]
        assert (vs.codec_context.width, vs.codec_context.height) == (320, 180)
        frames = [(f.pts, f.key_frame) for f in c.decode(video=0)]
    assert len(frames) == 75
    pts = [p for p, _ in frames]
    assert pts == [i * 3000 for i in range(75)]  # continuous, 1/30 s in a 90 kHz timescale
    assert [p for p, k in frames if k] == [0, 90000, 180000]  # one keyframe, at segment starts
    with av.open(io.BytesIO(data)) as c:
        audio = [(f.pts, f.samples) for f in c.decode(audio=0)]
    assert all(n == 1024 for _, n in audio)
    assert [p for p, _ in audio] == [i * 1024 for i in range(len(audio))]
    assert len(audio) * 1024 >= 75 * 1600


def test_each_segment_decodes_alone_from_a_keyframe(encoded):
    init, _, segments, _ = encoded
    for s in segments:
        with av.open(io.BytesIO(init + s.data)) as c:
            frames = list(c.decode(video=0))
        assert frames[0].key_frame
        assert len(frames) == round(s.duration * 30)


def test_parts_are_independent_only_at_segment_start(encoded):
    _, parts, _, _ = encoded
    assert [(p.msn, p.index) for p in parts][:6] == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4),
                                                     (1, 0)]
    assert [p.independent for p in parts] == [p.index == 0 for p in parts]
    assert all(abs(p.duration - 0.2) < 1e-9 for p in parts[:-1])
    assert abs(parts[-1].duration - 0.1) < 1e-9  # 75 frames: the run ends 3 frames into a part
    assert all(p.data[4:8] == b"moof" for p in parts)
