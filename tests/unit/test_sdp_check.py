from __future__ import annotations

import pytest

from media_server.sdp_check import OfferError, check_offer

BASE = """v=0\r
o=- 1 1 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
m=audio 9 UDP/TLS/RTP/SAVPF 111\r
c=IN IP4 0.0.0.0\r
a=mid:0\r
a=sendonly\r
a=rtcp-mux\r
a=ice-ufrag:abcd\r
a=ice-pwd:abcdefghijklmnopqrstuvwx\r
a=fingerprint:sha-256 {fp}\r
a=setup:actpass\r
a=rtpmap:111 opus/48000/2\r
m=video 9 UDP/TLS/RTP/SAVPF {pts}\r
c=IN IP4 0.0.0.0\r
a=mid:1\r
a=sendonly\r
a=rtcp-mux\r
a=ice-ufrag:abcd\r
a=ice-pwd:abcdefghijklmnopqrstuvwx\r
a=fingerprint:sha-256 {fp}\r
a=setup:actpass\r
{rtpmaps}"""
FP = ":".join(["AB"] * 32)


def offer(pts: str, rtpmaps: str) -> str:
    return BASE.format(fp=FP, pts=pts, rtpmaps=rtpmaps)


def test_h264_high_and_vp8_are_taken() -> None:
    s = check_offer(offer("96 97", "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;"
                                  "profile-level-id=640c1f\r\na=rtpmap:97 VP8/90000\r\n"))
    assert s.video_codecs == ["H264", "VP8"] and s.audio_codecs == ["opus"]
    assert s.h264_profiles == ["640c1f"]


@pytest.mark.parametrize(("sdp", "why"), [
    ("", "empty"),
    ("hello world", "does not parse"),
    ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", "no audio or video"),
])
def test_garbage(sdp: str, why: str) -> None:
    with pytest.raises(OfferError, match=why):
        check_offer(sdp)


def test_no_codec_we_take_names_what_was_offered() -> None:
    with pytest.raises(OfferError, match=r"video section offers no codec we take.*AV1"):
        check_offer(offer("45", "a=rtpmap:45 AV1/90000\r\n"))
    with pytest.raises(OfferError, match="packetization-mode=1"):
        check_offer(offer("96", "a=rtpmap:96 H264/90000\r\n"
                                "a=fmtp:96 packetization-mode=0;profile-level-id=42e01f\r\n"))


def test_missing_fingerprint() -> None:
    sdp = offer("97", "a=rtpmap:97 VP8/90000\r\n").replace(f"a=fingerprint:sha-256 {FP}\r\n", "")
    with pytest.raises(OfferError, match="fingerprint"):
        check_offer(sdp)


def test_missing_ice_credentials() -> None:
    sdp = offer("97", "a=rtpmap:97 VP8/90000\r\n").replace("a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n",
                                                            "")
    with pytest.raises(OfferError, match="ICE credentials"):
        check_offer(sdp)


def test_session_level_ice_credentials_are_enough() -> None:
    sdp = offer("97", "a=rtpmap:97 VP8/90000\r\n").replace(
        "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n", "")
    sdp = sdp.replace("t=0 0\r\n", "t=0 0\r\na=ice-ufrag:abcd\r\n"
                                     "a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n")
    assert check_offer(sdp).video_codecs == ["VP8"]


@pytest.mark.parametrize("junk", [
    "v=0\r\nm=video 9 RTP/AVP 0\r\n",
    "v=0\r\nm=video x UDP/TLS/RTP/SAVPF 96\r\n",
    "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 300\r\n",
    "v=0\r\na=fingerprint:sha-256\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
    "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111\r\n",
])
def test_malformed_offers_raise_offer_error_only(junk: str) -> None:
    with pytest.raises(OfferError):
        check_offer(junk)
