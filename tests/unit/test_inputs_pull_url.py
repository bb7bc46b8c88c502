"""validate_pull_url and the FFmpeg options a PullInput forces."""

from __future__ import annotations

from pathlib import Path

import pytest

from media_server.inputs.pull import (
    PROTOCOL_WHITELIST,
    PullInput,
    describe_error,
    redact_url,
    validate_pull_url,
)
from media_server.source import Source


@pytest.mark.parametrize("url", [
    "rtmp://example.com/live/key",
    "rtmps://example.com:443/live/key",
    "srt://203.0.113.5:9000?streamid=abc",
    "rtsp://user:pw@camera.local:554/stream1",
    "rtsps://camera.local/stream",
    "https://cdn.example.com/live/index.m3u8",
    "http://127.0.0.1:8080/clip.mp4",
    "udp://239.0.0.1:1234",
    "udp://@:1234",
    "tcp://10.0.0.2:9000",
    "RTMP://Example.com/live",
])
def test_accepts_network_urls(url: str) -> None:
    assert validate_pull_url(url) is None


@pytest.mark.parametrize(("url", "why"), [
    (None, "string"),
    (42, "string"),
    ("", "empty"),
    ("   ", "empty"),
    ("javascript:alert(1)", "unsupported scheme"),
    ("data:video/mp4;base64,AAAA", "unsupported scheme"),
    ("concat:/etc/passwd|/etc/shadow", "unsupported scheme"),
    ("subfile,,start,0,end,100,,:/etc/passwd", "local files"),
    ("pipe:0", "unsupported scheme"),
    ("fd:3", "unsupported scheme"),
    ("lavfi:testsrc", "unsupported scheme"),
    ("crypto+http://example.com/x", "unsupported scheme"),
    ("gopher://example.com/", "unsupported scheme"),
    ("/etc/passwd", "local files are not allowed"),
    ("file:/etc/passwd", "local files are not allowed"),
    ("file:///etc/passwd", "local files are not allowed"),
    ("rtmp:///live", "needs a host"),
    ("http://", "needs a host"),
    ("http://example.com:99999/x", "malformed"),
    ("http://169.254.169.254/latest/meta-data/", "not allowed"),
    ("http://metadata.google.internal/computeMetadata/v1/", "not allowed"),
    ("rtmp://example.com/live\nkey", "control"),
    (" rtmp://example.com/live", "whitespace"),
    ("tcp://0.0.0.0:9000?listen=1", "listen mode"),
    ("tcp://0.0.0.0:9000?listen", "listen mode"),
    ("srt://0.0.0.0:9000?mode=listener", "listen mode"),
    ("http://0.0.0.0/x", "not allowed"),
    ("rtmp://example.com/" + "a" * 3000, "longer"),
])
def test_rejects_garbage(url: object, why: str) -> None:
    problem = validate_pull_url(url)
    assert problem is not None and why in problem, problem


def test_local_files_only_under_allowed_roots(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    clip = media / "clip.mp4"
    clip.write_bytes(b"")
    roots = [media]
    assert validate_pull_url(str(clip), allowed_file_roots=roots) is None
    assert validate_pull_url(f"file:{clip}", allowed_file_roots=roots) is None
    assert validate_pull_url(f"file://{clip}", allowed_file_roots=roots) is None
    # Not yet existing files under the root are fine (a reconnecting pull waits for them).
    assert validate_pull_url(str(media / "later.mp4"), allowed_file_roots=roots) is None
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"")
    assert "outside" in validate_pull_url(str(outside), allowed_file_roots=roots)
    assert "outside" in validate_pull_url(f"{media}/../secret.mp4", allowed_file_roots=roots)
    link = media / "link.mp4"
    link.symlink_to(outside)
    assert "outside" in validate_pull_url(str(link), allowed_file_roots=roots)
    assert "absolute" in validate_pull_url("clip.mp4", allowed_file_roots=roots)
    assert "host" in validate_pull_url(f"file://evil{clip}", allowed_file_roots=roots)


def test_pull_input_rejects_invalid_url_and_forces_whitelists(tmp_path: Path) -> None:
    src = Source("p", "s", "pull")
    with pytest.raises(ValueError, match="unsupported scheme"):
        PullInput(src, "concat:/etc/passwd")
    with pytest.raises(ValueError, match="local files"):
        PullInput(src, "/etc/passwd")
    p = PullInput(src, "https://cdn.example.com/live.m3u8",
                  options={"protocol_whitelist": "file,http", "user_agent": "sc"})
    assert p.options["protocol_whitelist"] == PROTOCOL_WHITELIST["https"]
    assert "file" not in p.options["protocol_whitelist"].split(",")
    assert "concat" not in p.options["format_whitelist"].split(",")
    assert p.options["user_agent"] == "sc"
    r = PullInput(src, "rtmp://example.com/live/key")
    assert "timeout" not in r.options  # rtmp's 'timeout' would turn on listen mode
    assert r.options["rw_timeout"] == "5000000"  # the read timeout, in µs
    s = PullInput(src, "rtsp://camera.local/stream")
    assert s.options["rtsp_transport"] == "tcp"
    f = PullInput(src, str(tmp_path / "x.mp4"), allowed_file_roots=[tmp_path])
    assert f.options["protocol_whitelist"] == "file"
    assert f._target == f"file:{(tmp_path / 'x.mp4').resolve()}"


def test_redact_and_describe() -> None:
    assert redact_url("rtsp://user:pw@cam:554/s") == "rtsp://user:***@cam:554/s"
    assert redact_url("rtmp://host/live/key") == "rtmp://host/live/key"
    assert describe_error(ConnectionRefusedError(111, "x")) == ("connection refused", False)
    assert describe_error(FileNotFoundError(2, "x")) == ("no such file", False)
