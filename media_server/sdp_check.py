"""Pure checks of a WHIP SDP offer, before any peer connection is created.

Answers the questions a publisher needs a clear 400 for: does it parse, does it carry media we
can receive, and does it offer at least one codec we decode (H.264 packetization-mode 1 or VP8
for video, Opus for audio).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc.sdp import SessionDescription

VIDEO_CODECS = ("H264", "VP8")
AUDIO_CODECS = ("opus",)


class OfferError(ValueError):
    """The offer cannot be taken; the message says why (sent to the client as a 400 detail)."""


@dataclass
class OfferSummary:
    video_codecs: list[str] = field(default_factory=list)  # acceptable codecs, in offer order
    audio_codecs: list[str] = field(default_factory=list)
    h264_profiles: list[str] = field(default_factory=list)  # profile-level-id values offered

    @property
    def has_video(self) -> bool:
        return bool(self.video_codecs)


def check_offer(sdp: str) -> OfferSummary:
    """Validate an SDP offer; raise OfferError naming the problem."""
    if not sdp.strip():
        raise OfferError("empty SDP offer")
    if not sdp.lstrip().startswith("v=0"):
        raise OfferError("SDP does not parse: it must start with 'v=0'")
    try:
        desc = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises assorted errors on garbage
        raise OfferError(f"SDP does not parse: {exc.__class__.__name__}: {exc}") from None
    media = [m for m in desc.media if m.kind in ("audio", "video")]
    if not media:
        raise OfferError("SDP offer has no audio or video media section")
    summary = OfferSummary()
    for m in media:
        if m.direction in ("recvonly", "inactive"):
            continue
        if m.port == 0:
            continue
        if not m.ice.usernameFragment or not m.ice.password:
            raise OfferError(f"{m.kind} section has no ICE credentials (a=ice-ufrag/ice-pwd)")
        if not m.dtls or not m.dtls.fingerprints:
            raise OfferError(f"{m.kind} section has no DTLS fingerprint (a=fingerprint)")
        names = []
        for codec in m.rtp.codecs:
            name = codec.mimeType.split("/", 1)[1]
            if m.kind == "video" and name.upper() == "H264":
                pm = str(codec.parameters.get("packetization-mode", "0"))
                if pm != "1":
                    continue
                plid = str(codec.parameters.get("profile-level-id", "42001f")).lower()
                summary.h264_profiles.append(plid)
                names.append("H264")
            elif m.kind == "video" and name.upper() == "VP8":
                names.append("VP8")
            elif m.kind == "audio" and name.lower() == "opus":
                names.append("opus")
        offered = sorted({c.mimeType.split("/", 1)[1] for c in m.rtp.codecs}) or ["none"]
        if not names:
            want = " or ".join(VIDEO_CODECS if m.kind == "video" else AUDIO_CODECS)
            raise OfferError(
                f"{m.kind} section offers no codec we take (offered: {', '.join(offered)}; "
                f"we take {want}{' with packetization-mode=1' if m.kind == 'video' else ''})")
        target = summary.video_codecs if m.kind == "video" else summary.audio_codecs
        for n in names:
            if n not in target:
                target.append(n)
    if not summary.video_codecs and not summary.audio_codecs:
        raise OfferError("SDP offer sends no media (every section is recvonly or inactive)")
    return summary
