from __future__ import annotations

from media_server.senderclock import SenderClock, ntp_to_unix


def ntp(unix: float) -> int:
    secs = int(unix) + 2_208_988_800
    return (secs << 32) | int((unix - int(unix)) * 2**32)


def test_ntp_to_unix() -> None:
    assert abs(ntp_to_unix(ntp(1_795_000_000.25)) - 1_795_000_000.25) < 1e-6


def test_capture_time_forward_backward_and_wrap() -> None:
    c = SenderClock(90000)
    assert c.capture_time(123) is None
    c.on_sender_report(ntp(1000.0), 2**32 - 9000)  # SR 0.1 s before the RTP clock wraps
    assert abs(c.capture_time(2**32 - 9000) - 1000.0) < 1e-9
    assert abs(c.capture_time(9000) - 1000.2) < 1e-9  # after the wrap
    assert abs(c.capture_time(2**32 - 18000) - 999.9) < 1e-9  # before the SR


def test_rebased_pts() -> None:
    c = SenderClock(90000)
    c.rtp_origin = lambda: 2**32 - 90000  # first RTP timestamp, 1 s before the wrap
    c.on_sender_report(ntp(500.0), 2**32 - 90000)
    assert abs(c.capture_time_of_pts(0) - 500.0) < 1e-9
    assert abs(c.capture_time_of_pts(180000) - 502.0) < 1e-9  # across the wrap
    c.rtp_origin = lambda: None
    assert c.capture_time_of_pts(0) is None
