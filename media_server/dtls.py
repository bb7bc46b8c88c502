"""DTLS and codec interop with the WHIP clients broadcasters actually use, on their defaults.

aiortc's DTLS context accepts only ECDSA P-256/384/521 peers with ECDHE-ECDSA suites:
- FFmpeg 8's whip muxer uses an ECDSA **P-224** certificate and offers `a=setup:passive`, so we
  are the DTLS client; OpenSSL (TLS 1.2) checks the server certificate's curve against *our*
  supported-groups list, whose default lacks P-224 → "wrong curve", alert 47. Fix: our groups
  list adds P-224 (after the usual ones, so key exchange still prefers X25519/P-256).
- GStreamer webrtcbin uses an **RSA** certificate; as the DTLS server it can only pick an
  ECDHE-RSA suite, which aiortc's client cipher list lacks → "no shared cipher". Fix: add
  ECDHE-RSA suites.
- aiortc only registers H.264 profile-level-id 42001f/42e01f, so an offer with only Main or High
  (FFmpeg/OBS with x264 defaults) fails to negotiate. Fix: register Main, Constrained High and
  High (aiortc matches on profile, not level; FFmpeg's decoder takes any of them).

Both DTLS fixes live in a certificate subclass installed per peer connection; aiortc itself is
not patched. Codec registration adds entries to aiortc's codec table once (idempotent).
"""

from __future__ import annotations

import logging

from aiortc import RTCPeerConnection
from aiortc.codecs import CODECS
from aiortc.rtcdtlstransport import RTCCertificate, SRTPProtectionProfile
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters
from OpenSSL import SSL

from . import openssl_groups

log = logging.getLogger(__name__)

# ECDSA suites first (our own certificate is ECDSA P-256), then ECDHE-RSA ones so a DTLS server
# with an RSA certificate can pick a suite when we are the client.
CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    b"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:"
    b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:"
    b"ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
)
# Key-exchange groups; with TLS 1.2 OpenSSL also checks the peer certificate's curve here.
GROUPS = b"X25519:P-256:P-384:P-521:P-224"

_warned = False


class InteropCertificate(RTCCertificate):
    """An RTCCertificate whose DTLS context takes P-224 and RSA peers too."""

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        global _warned
        ctx = super()._create_ssl_context(srtp_profiles)
        ctx.set_cipher_list(CIPHERS)
        if openssl_groups.available():
            openssl_groups.set_groups_list(ctx, GROUPS)
        elif not _warned:
            _warned = True
            log.warning("cannot set DTLS groups (%s): publishers with P-224 certificates "
                        "(FFmpeg's whip muxer) will fail to connect", openssl_groups.error())
        return ctx


def install_dtls_interop(pc: RTCPeerConnection) -> None:
    """Use an InteropCertificate for `pc`. Call right after creating it, before any
    setRemoteDescription/addTransceiver (transports take the certificate when created)."""
    pc._RTCPeerConnection__certificates = [  # type: ignore[attr-defined]
        InteropCertificate.generateCertificate()]


# Profiles beyond aiortc's Constrained Baseline (42001f/42e01f): Main, Constrained High, High.
# Level 5.2 (0x34): the level we can *receive*; FFmpeg decodes all of them.
EXTRA_H264_PROFILES = ("4d0034", "640c34", "640034")


def register_h264_profiles(profiles: tuple[str, ...] = EXTRA_H264_PROFILES) -> None:
    """Add H.264 Main/High (packetization-mode 1) to aiortc's codec table. Idempotent."""
    video = CODECS["video"]
    have = {c.parameters.get("profile-level-id") for c in video if c.mimeType == "video/H264"}
    pt = max(c.payloadType for c in video) + 1
    for plid in profiles:
        if plid in have:
            continue
        video.append(RTCRtpCodecParameters(
            mimeType="video/H264", clockRate=90000, payloadType=pt,
            rtcpFeedback=[RTCRtcpFeedback(type="nack"),
                          RTCRtcpFeedback(type="nack", parameter="pli"),
                          RTCRtcpFeedback(type="goog-remb")],
            parameters={"level-asymmetry-allowed": "1", "packetization-mode": "1",
                        "profile-level-id": plid}))
        video.append(RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000,
                                           payloadType=pt + 1, parameters={"apt": pt}))
        pt += 2
