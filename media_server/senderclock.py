"""Sender capture wall-clock from RTCP sender reports (pure).

An RTCP SR pairs the sender's NTP wall clock with an RTP timestamp. With the latest pair, any
RTP timestamp of that stream maps to the sender's wall clock at capture:
``ntp + (rtp - sr_rtp) / clock_rate`` (RTP timestamps wrap at 2^32). The result is on the
*sender's* clock: exact for a publisher on this machine (the latency probe), offset by the
clock difference for a remote one (NTP-synced publishers make it meaningful).
"""

from __future__ import annotations

from collections.abc import Callable

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def ntp_to_unix(ntp: int) -> float:
    """64-bit NTP timestamp (32.32 fixed point) → Unix seconds."""
    return (ntp >> 32) - NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / 2**32


class SenderClock:
    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self._sr: tuple[float, int] | None = None  # (sender unix time, rtp timestamp)
        self.reports = 0
        # Receivers that rebase pts to the first RTP timestamp (aiortc) tell us that origin.
        self.rtp_origin: Callable[[], int | None] = lambda: 0

    def on_sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        self._sr = (ntp_to_unix(ntp), rtp_timestamp & 0xFFFFFFFF)
        self.reports += 1

    def capture_time(self, rtp_timestamp: int) -> float | None:
        """Sender wall clock of a sample with this RTP timestamp, or None before any SR."""
        if self._sr is None:
            return None
        unix, sr_rtp = self._sr
        diff = ((rtp_timestamp - sr_rtp + 2**31) % 2**32) - 2**31
        return unix + diff / self.clock_rate

    def capture_time_of_pts(self, pts: int | None) -> float | None:
        """Like capture_time for a frame pts rebased to the stream's first RTP timestamp."""
        origin = self.rtp_origin()
        if pts is None or origin is None:
            return None
        return self.capture_time((pts + origin) & 0xFFFFFFFF)
