"""Pure CMAF fMP4 writing: init segments and media fragments (ISO/IEC 14496-12/-14/-15).

One rendition = one fMP4 stream with two tracks muxed (track 1 H.264 video, track 2 AAC-LC
audio): one init segment, and per CMAF chunk one fragment (``moof`` with one ``traf`` per
track + one ``mdat``); an LL-HLS part is one or more chunks (see `segmenter`). A media segment
is the concatenation of its parts' fragments, so parts and segments share bytes and never
disagree.

No I/O, no event loop, no PyAV: everything here is bytes in, bytes out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

VIDEO_TRACK_ID = 1
AUDIO_TRACK_ID = 2

# Sample flags (ISO 14496-12 8.8.3.1): sample_depends_on=2 (I) / =1 + is_non_sync_sample.
SYNC_SAMPLE_FLAGS = 0x02000000
NON_SYNC_SAMPLE_FLAGS = 0x01010000

_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


# --------------------------------------------------------------------------- box helpers


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def iter_boxes(data: bytes | memoryview, offset: int = 0, end: int | None = None):
    """Yield (type, payload_start, box_end) of the boxes in data[offset:end] (for tests/tools)."""
    end = len(data) if end is None else end
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise ValueError(f"truncated box {kind!r} at {offset}")
        yield kind.decode("latin-1"), offset + header, offset + size
        offset += size


# --------------------------------------------------------------------------- H.264


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (3- or 4-byte start codes)."""
    nals: list[bytes] = []
    n = len(data)
    i = data.find(b"\x00\x00\x01")
    if i < 0:
        return [data] if data else []
    start = i + 3
    while True:
        j = data.find(b"\x00\x00\x01", start)
        if j < 0:
            nal = data[start:n]
            nals.append(nal.rstrip(b"\x00") if nal.endswith(b"\x00") else nal)
            break
        end = j
        # A 4-byte start code's leading zero belongs to the next start code, not to the NAL.
        while end > start and data[end - 1] == 0:
            end -= 1
        nals.append(data[start:end])
        start = j + 3
    return [x for x in nals if x]


def is_annexb(data: bytes) -> bool:
    return data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01")


def split_avcc(data: bytes, length_size: int = 4) -> list[bytes]:
    nals, i = [], 0
    while i + length_size <= len(data):
        size = int.from_bytes(data[i : i + length_size], "big")
        i += length_size
        nals.append(data[i : i + size])
        i += size
    return nals


# NAL types dropped from samples: SPS/PPS live in the avcC of the init segment ('avc1'),
# access unit delimiters and filler data carry nothing a player needs.
_DROP_NAL_TYPES = frozenset({7, 8, 9, 12})


def to_avcc_sample(data: bytes) -> bytes:
    """One encoded access unit (Annex-B or already length-prefixed) as an AVCC sample."""
    nals = split_annexb(data) if is_annexb(data) else split_avcc(data)
    return b"".join(
        struct.pack(">I", len(nal)) + nal for nal in nals if nal[0] & 0x1F not in _DROP_NAL_TYPES
    )


def sample_is_idr(avcc_sample: bytes) -> bool:
    return any(nal and nal[0] & 0x1F == 5 for nal in split_avcc(avcc_sample))


@dataclass(frozen=True)
class AvcConfig:
    """H.264 decoder configuration (parameter sets) for the avcC box and CODECS string."""

    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]

    @property
    def profile_idc(self) -> int:
        return self.sps[0][1]

    @property
    def constraint_flags(self) -> int:
        return self.sps[0][2]

    @property
    def level_idc(self) -> int:
        return self.sps[0][3]

    @property
    def codec_string(self) -> str:
        """RFC 6381 string from the real SPS bytes, e.g. ``avc1.64001f``."""
        return f"avc1.{self.profile_idc:02x}{self.constraint_flags:02x}{self.level_idc:02x}"

    @classmethod
    def from_extradata(cls, extradata: bytes) -> AvcConfig:
        """Parse encoder extradata, either Annex-B parameter sets or an avcC record."""
        if not extradata:
            raise ValueError("empty H.264 extradata (open the encoder with GLOBAL_HEADER)")
        if is_annexb(extradata):
            nals = split_annexb(extradata)
            sps = tuple(n for n in nals if n[0] & 0x1F == 7)
            pps = tuple(n for n in nals if n[0] & 0x1F == 8)
        elif extradata[0] == 1:
            sps_l, pps_l = [], []
            i = 5
            count = extradata[i] & 0x1F
            i += 1
            for _ in range(count):
                size = int.from_bytes(extradata[i : i + 2], "big")
                sps_l.append(extradata[i + 2 : i + 2 + size])
                i += 2 + size
            count = extradata[i]
            i += 1
            for _ in range(count):
                size = int.from_bytes(extradata[i : i + 2], "big")
                pps_l.append(extradata[i + 2 : i + 2 + size])
                i += 2 + size
            sps, pps = tuple(sps_l), tuple(pps_l)
        else:
            raise ValueError("H.264 extradata is neither Annex-B nor avcC")
        if not sps or not pps:
            raise ValueError("H.264 extradata lacks SPS or PPS")
        return cls(sps, pps)

    def avcc_box(self) -> bytes:
        out = bytearray(
            [1, self.profile_idc, self.constraint_flags, self.level_idc, 0xFC | 3,
             0xE0 | len(self.sps)]
        )
        for s in self.sps:
            out += struct.pack(">H", len(s)) + s
        out.append(len(self.pps))
        for p in self.pps:
            out += struct.pack(">H", len(p)) + p
        if self.profile_idc in (100, 110, 122, 144):
            # chroma_format=1 (4:2:0), 8-bit luma/chroma: what we encode (yuv420p).
            out += bytes([0xFC | 1, 0xF8, 0xF8, 0])
        return box(b"avcC", bytes(out))


# --------------------------------------------------------------------------- AAC


_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
              7350)


@dataclass(frozen=True)
class AacConfig:
    """MPEG-4 AudioSpecificConfig (the AAC encoder's extradata)."""

    asc: bytes

    @property
    def object_type(self) -> int:
        return self.asc[0] >> 3

    @property
    def sample_rate(self) -> int:
        idx = ((self.asc[0] & 0x07) << 1) | (self.asc[1] >> 7)
        return _AAC_RATES[idx]

    @property
    def channels(self) -> int:
        return (self.asc[1] >> 3) & 0x0F

    @property
    def codec_string(self) -> str:
        return f"mp4a.40.{self.object_type}"

    @classmethod
    def lc(cls, sample_rate: int = 48000, channels: int = 2) -> AacConfig:
        idx = _AAC_RATES.index(sample_rate)
        v = (2 << 11) | (idx << 7) | (channels << 3)
        return cls(struct.pack(">H", v))


def _descriptor(tag: int, payload: bytes) -> bytes:
    n = len(payload)
    size = bytes([0x80 | ((n >> 21) & 0x7F), 0x80 | ((n >> 14) & 0x7F), 0x80 | ((n >> 7) & 0x7F),
                  n & 0x7F])
    return bytes([tag]) + size + payload


def esds_box(aac: AacConfig, avg_bitrate: int = 0, max_bitrate: int = 0) -> bytes:
    dsi = _descriptor(0x05, aac.asc)
    dcd = _descriptor(
        0x04,
        # objectTypeIndication 0x40 (MPEG-4 audio), streamType 5 (audio) << 2 | 1, bufferSizeDB 0
        bytes([0x40, (0x05 << 2) | 1, 0, 0, 0])
        + struct.pack(">II", max_bitrate, avg_bitrate)
        + dsi,
    )
    es = _descriptor(0x03, struct.pack(">HB", 0, 0) + dcd + _descriptor(0x06, b"\x02"))
    return full_box(b"esds", 0, 0, es)


# --------------------------------------------------------------------------- init segment


@dataclass(frozen=True)
class VideoTrack:
    width: int
    height: int
    timescale: int
    avc: AvcConfig
    track_id: int = VIDEO_TRACK_ID


@dataclass(frozen=True)
class AudioTrack:
    timescale: int  # == sample rate
    aac: AacConfig
    bitrate: int = 0
    track_id: int = AUDIO_TRACK_ID


def _tkhd(track_id: int, width: int, height: int, volume: int) -> bytes:
    return full_box(
        b"tkhd", 0, 0x3,
        struct.pack(">IIIII", 0, 0, track_id, 0, 0),
        b"\x00" * 8,
        struct.pack(">hhhH", 0, 0, volume, 0),
        _MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )


def _mdhd(timescale: int) -> bytes:
    return full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, 0x55C4, 0))


def _hdlr(handler: bytes, name: bytes) -> bytes:
    return full_box(b"hdlr", 0, 0, struct.pack(">I4s", 0, handler), b"\x00" * 12, name + b"\x00")


def _dinf() -> bytes:
    return box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))


def _empty_tables(sample_entry: bytes) -> bytes:
    return box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), sample_entry),
        full_box(b"stts", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsc", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsz", 0, 0, struct.pack(">II", 0, 0)),
        full_box(b"stco", 0, 0, struct.pack(">I", 0)),
    )


def _video_trak(t: VideoTrack) -> bytes:
    avc1 = box(
        b"avc1",
        b"\x00" * 6, struct.pack(">H", 1),  # reserved, data_reference_index
        b"\x00" * 16,  # pre_defined/reserved
        struct.pack(">HHIIIH", t.width, t.height, 0x00480000, 0x00480000, 0, 1),
        b"\x00" * 32,  # compressorname
        struct.pack(">Hh", 0x0018, -1),
        t.avc.avcc_box(),
    )
    minf = box(b"minf", full_box(b"vmhd", 0, 1, b"\x00" * 8), _dinf(), _empty_tables(avc1))
    mdia = box(b"mdia", _mdhd(t.timescale), _hdlr(b"vide", b"SceneCloud video"), minf)
    return box(b"trak", _tkhd(t.track_id, t.width, t.height, 0), mdia)


def _audio_trak(t: AudioTrack) -> bytes:
    mp4a = box(
        b"mp4a",
        b"\x00" * 6, struct.pack(">H", 1),
        b"\x00" * 8,  # version, revision, vendor
        struct.pack(">HHHHI", t.aac.channels, 16, 0, 0, t.timescale << 16),
        esds_box(t.aac, t.bitrate, t.bitrate),
    )
    minf = box(b"minf", full_box(b"smhd", 0, 0, b"\x00" * 4), _dinf(), _empty_tables(mp4a))
    mdia = box(b"mdia", _mdhd(t.timescale), _hdlr(b"soun", b"SceneCloud audio"), minf)
    return box(b"trak", _tkhd(t.track_id, 0, 0, 0x0100), mdia)


def init_segment(video: VideoTrack | None, audio: AudioTrack | None) -> bytes:
    """ftyp + moov (mvhd, one trak per track with empty sample tables, mvex/trex)."""
    tracks = [t for t in (video, audio) if t is not None]
    if not tracks:
        raise ValueError("an init segment needs at least one track")
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6", b"cmfc", b"isom", b"mp41")
    mvhd = full_box(
        b"mvhd", 0, 0,
        struct.pack(">IIII", 0, 0, 1000, 0),
        struct.pack(">IH", 0x00010000, 0x0100), b"\x00" * 10,
        _MATRIX, b"\x00" * 24,
        struct.pack(">I", max(t.track_id for t in tracks) + 1),
    )
    traks = []
    if video is not None:
        traks.append(_video_trak(video))
    if audio is not None:
        traks.append(_audio_trak(audio))
    trex = [full_box(b"trex", 0, 0, struct.pack(">IIIII", t.track_id, 1, 0, 0, 0)) for t in tracks]
    return ftyp + box(b"moov", mvhd, *traks, box(b"mvex", *trex))


# --------------------------------------------------------------------------- fragments


@dataclass(frozen=True, slots=True)
class Sample:
    data: bytes  # AVCC access unit or raw AAC frame
    duration: int  # in the track timescale
    is_sync: bool = True
    composition_offset: int = 0


@dataclass(frozen=True, slots=True)
class TrackRun:
    track_id: int
    base_decode_time: int  # tfdt, in the track timescale
    samples: Sequence[Sample]


_TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800


def _traf(run: TrackRun, data_offset: int) -> bytes:
    entries = b"".join(
        struct.pack(
            ">IIIi", s.duration, len(s.data),
            SYNC_SAMPLE_FLAGS if s.is_sync else NON_SYNC_SAMPLE_FLAGS, s.composition_offset,
        )
        for s in run.samples
    )
    return box(
        b"traf",
        full_box(b"tfhd", 0, 0x020000, struct.pack(">I", run.track_id)),  # default-base-is-moof
        full_box(b"tfdt", 1, 0, struct.pack(">Q", run.base_decode_time)),
        full_box(b"trun", 1, _TRUN_FLAGS, struct.pack(">Ii", len(run.samples), data_offset),
                 entries),
    )


def media_fragment(sequence_number: int, runs: Iterable[TrackRun]) -> bytes:
    """moof (mfhd + one traf per non-empty run) + mdat; data offsets are relative to moof."""
    runs = [r for r in runs if r.samples]
    if not runs:
        raise ValueError("a fragment needs at least one sample")
    # First pass with zero offsets to learn the moof size (offsets don't change box sizes).
    mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", sequence_number))
    moof_size = len(box(b"moof", mfhd, *(_traf(r, 0) for r in runs)))
    offset = moof_size + 8
    trafs = []
    for r in runs:
        trafs.append(_traf(r, offset))
        offset += sum(len(s.data) for s in r.samples)
    payload = b"".join(s.data for r in runs for s in r.samples)
    return box(b"moof", mfhd, *trafs) + box(b"mdat", payload)
