"""ICE candidate gathering restricted to configured host addresses.

aioice gathers on every interface address except loopback. A server behind a known address (or a
test on loopback) wants exactly the addresses it names, like MediaMTX's `webrtcAdditionalHosts`
/ interface filters. `restrict_host_addresses` applies that to one peer connection only, after
`setRemoteDescription` (which creates the ICE gatherers) and before `setLocalDescription`
(which gathers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiortc import RTCPeerConnection


def _gatherers(pc: RTCPeerConnection) -> list[object]:
    out = []
    for t in pc.getTransceivers():
        for part in (t.receiver, t.sender):
            dtls = getattr(part, "transport", None)
            ice = getattr(dtls, "transport", None)
            gatherer = getattr(ice, "iceGatherer", None)
            if gatherer is not None and gatherer not in out:
                out.append(gatherer)
    sctp = pc.sctp
    if sctp is not None:
        gatherer = sctp.transport.transport.iceGatherer
        if gatherer not in out:
            out.append(gatherer)
    return out


def restrict_host_addresses(pc: RTCPeerConnection, addresses: Sequence[str]) -> None:
    """Gather host candidates only on `addresses` (no-op when empty)."""
    if not addresses:
        return
    addrs = list(addresses)
    for gatherer in _gatherers(pc):
        conn = gatherer._connection  # type: ignore[attr-defined]

        async def gather(conn=conn) -> None:  # type: ignore[no-untyped-def]
            if conn._local_candidates_start:
                return
            conn._local_candidates_start = True
            results = await asyncio.gather(*(
                conn.get_component_candidates(component=c, addresses=addrs)
                for c in conn._components))
            for candidates in results:
                conn._local_candidates += candidates
            conn._local_candidates_end = True

        conn.gather_candidates = gather


def stop_consent_freshness(pc: RTCPeerConnection) -> int:
    """Stop aioice's consent-freshness checks (RFC 7675) on a connected peer connection.

    Some WHIP clients never answer the STUN binding requests these checks send — FFmpeg 8's
    whip muxer does not — and aioice then closes the connection after 30 s. A WHIP server only
    receives, so it loses nothing by not asking for consent to send (ICE-lite servers never do);
    a publisher that goes away is caught by the session's media-idle timeout instead.
    Returns how many checks were stopped."""
    stopped = 0
    for gatherer in _gatherers(pc):
        conn = gatherer._connection  # type: ignore[attr-defined]
        task = getattr(conn, "_query_consent_task", None)
        if task is not None and not task.done():
            task.cancel()
            stopped += 1
    return stopped
