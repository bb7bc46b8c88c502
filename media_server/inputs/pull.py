"""Pull inputs: any URL or file FFmpeg opens, demuxed and decoded in a worker thread.

A `PullInput` runs one daemon thread: open (PyAV, bounded by open/read timeouts) → demux →
decode video and audio → push into the `Source`. On an error or the end of a live stream it
reports a short human message (``source.error``), puts the source in ``connecting`` (or
``error`` for problems a retry is unlikely to fix, such as invalid data) and retries after an
exponential backoff (1, 2, 4 ... ``backoff_max_s`` seconds) until stopped. The backoff resets
after a run that lasted longer than `BACKOFF_RESET_S`. Files (and other inputs with a known
duration, e.g. an MP4 over HTTP or a VOD HLS playlist) are paced by their timestamps and, with
``loop_files``, replayed from the start at the end; live protocols are pushed as they arrive.

Security: letting an API caller make FFmpeg open a URL is letting them read whatever FFmpeg can
reach. FFmpeg has protocols and demuxers that read arbitrary local data (``file:``, ``pipe:``,
``fd:``, ``data:``, ``concat:``, ``subfile:``, the ``concat``/``image2`` demuxers, ``lavfi``
devices, HLS playlists whose segments point at ``file:`` ...). So:

1. `validate_pull_url` is an allow-list: network schemes ``rtmp(s) srt rtsp(s) http(s) udp
   tcp`` with a host, and local files only when they resolve (symlinks followed) under one of
   the ``allowed_file_roots`` given — none by default. Literal link-local hosts (cloud metadata
   endpoints such as 169.254.169.254) are refused, and so are URL options that would make
   FFmpeg listen instead of connecting out (``tcp://...?listen``, ``srt://...?mode=listener``).
   Anything else is rejected with a message.
2. FFmpeg is opened with a per-scheme ``protocol_whitelist`` (an ``http`` URL may not pull in
   ``file:`` segments; a local file may not open network or other protocols) and a
   ``format_whitelist`` of media demuxers, so even a crafted playlist or file cannot switch to
   ``concat``/``image2``/devices. Local paths are handed to FFmpeg as ``file:<realpath>`` so a
   path can never be read as another protocol. These keys override caller ``options``.
3. ``options`` is for trusted configuration (timeouts, transport), not for API callers.

What remains (documented limitation): a network URL can point at hosts inside the server's
network (SSRF); the short error messages ("connection refused", "timed out") tell a caller
whether a port is open. Only authenticated directors can add pull sources; deployments that
care should restrict egress at the network level.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import av
import av.error

from media_server.source import AUDIO_RATE, Source, SourceState

log = logging.getLogger(__name__)

NETWORK_SCHEMES: frozenset[str] = frozenset(
    {"rtmp", "rtmps", "srt", "rtsp", "rtsps", "http", "https", "udp", "tcp"})
LIVE_SCHEMES: frozenset[str] = frozenset(
    {"rtmp", "rtmps", "srt", "rtsp", "rtsps", "udp", "tcp"})

# Protocols FFmpeg may use (including nested ones) per URL scheme.
PROTOCOL_WHITELIST: dict[str, str] = {
    "file": "file",
    "http": "http,https,tcp,tls,crypto,httpproxy",
    "https": "http,https,tcp,tls,crypto,httpproxy",
    "rtmp": "rtmp,rtmps,tcp,tls",
    "rtmps": "rtmp,rtmps,tcp,tls",
    "srt": "srt",
    "rtsp": "rtsp,rtsps,rtp,srtp,udp,tcp,tls",
    "rtsps": "rtsp,rtsps,rtp,srtp,udp,tcp,tls",
    "udp": "udp",
    "tcp": "tcp",
}
# Demuxers a pull may use: media containers and elementary streams, never concat/image2/sdp
# or devices. (FFmpeg matches any comma-separated part of a demuxer name, e.g. "mov" matches
# "mov,mp4,m4a,3gp,3g2,mj2".)
FORMAT_WHITELIST = ",".join((
    "mov", "matroska", "flv", "live_flv", "mpegts", "hls", "rtsp", "aac", "mp3", "ac3",
    "eac3", "ogg", "wav", "avi", "h264", "hevc", "ivf", "mpegvideo", "mpeg",
))
FORCED_OPTIONS = {"protocol_whitelist", "format_whitelist", "enable_drefs"}

MAX_URL_LEN = 2048
# PyAV restarts the open timeout for avformat_find_stream_info, so 10 s leaves room for
# FFmpeg's default 5 s probe (analyzeduration) on a sparse live stream.
DEFAULT_OPEN_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 5.0
BACKOFF_RESET_S = 10.0
MAX_CONSECUTIVE_DECODE_ERRORS = 50
# Pacing: re-anchor the media clock instead of bursting (behind) or sleeping long (ahead).
PACE_MAX_BEHIND_S = 1.0
PACE_MAX_AHEAD_S = 5.0

_BLOCKED_HOSTS = frozenset({"metadata.google.internal", "metadata"})


def _scheme_of(url: str) -> str | None:
    """The URL scheme (lower case) when the string looks like ``scheme:...``, else None."""
    head, sep, _ = url.partition(":")
    if not sep or not head or len(head) == 1:  # no colon, or a Windows drive letter
        return None
    if head[0].isalpha() and all(c.isalnum() or c in "+-." for c in head):
        return head.lower()
    return None


def _under_roots(path: str, roots: Iterable[str | os.PathLike[str]]) -> bool:
    real = Path(os.path.realpath(path))
    for root in roots:
        r = Path(os.path.realpath(root))
        if real == r or r in real.parents:
            return True
    return False


def validate_pull_url(url: Any, *,
                      allowed_file_roots: Iterable[str | os.PathLike[str]] = ()) -> str | None:
    """Return why ``url`` may not be pulled, or None when it is acceptable.

    Allowed: ``rtmp(s)://``, ``srt://``, ``rtsp(s)://``, ``http(s)://`` (HLS, MP4 ...),
    ``udp://``, ``tcp://`` with a host; ``file:`` URLs and absolute paths only when they
    resolve under one of ``allowed_file_roots`` (default: none, so no local files)."""
    if not isinstance(url, str):
        return "url must be a string"
    if not url.strip():
        return "url is empty"
    if len(url) > MAX_URL_LEN:
        return f"url is longer than {MAX_URL_LEN} characters"
    if url != url.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "url contains whitespace or control characters at its ends or inside"
    scheme = _scheme_of(url)
    if scheme is None or scheme == "file":
        path = url[5:] if scheme == "file" else url
        if path.startswith("//"):  # file://host/path or file:///path
            parts = urlsplit(url)
            if parts.netloc not in ("", "localhost"):
                return "file URLs must not name a host"
            path = parts.path
        roots = list(allowed_file_roots)
        if not roots:
            return "local files are not allowed"
        if not os.path.isabs(path):
            return "local file paths must be absolute"
        if not _under_roots(path, roots):
            return "local file is outside the allowed directories"
        return None
    if scheme not in NETWORK_SCHEMES:
        return f"unsupported scheme '{scheme}:' (use rtmp, rtmps, srt, rtsp, rtsps, http, " \
               "https, udp, tcp)"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        return f"malformed url: {exc}"
    if not parts.netloc or (not host and scheme not in ("udp",)):
        return f"{scheme} url needs a host, e.g. {scheme}://host:port/..."
    query = {k.lower(): v.lower() for k, v in parse_qsl(parts.query, keep_blank_values=True)}
    if (scheme == "tcp" and "listen" in query) or (
            scheme == "srt" and query.get("mode") in ("listener", "rendezvous")):
        return "listen mode is not allowed: a pull connects out to its source"
    if host:
        if host.lower() in _BLOCKED_HOSTS:
            return "host is not allowed"
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None and (ip.is_link_local or (
                scheme != "udp" and (ip.is_multicast or ip.is_unspecified))):
            return "host address is not allowed"
    return None


def local_path_of(url: str) -> str | None:
    """The absolute real path a (validated) local-file url refers to, else None."""
    scheme = _scheme_of(url)
    if scheme not in (None, "file"):
        return None
    path = url[5:] if scheme == "file" else url
    if path.startswith("//"):
        path = urlsplit(url).path
    return os.path.realpath(path)


def redact_url(url: str) -> str:
    """The url without a password (``user:***@host``), for logs and the API."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = f"{parts.username}:***@{parts.hostname}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return url


def describe_error(exc: BaseException) -> tuple[str, bool]:
    """A short human message for a failure, and whether it looks permanent (a retry will
    probably fail the same way: bad data, unsupported protocol, refused by policy)."""
    if isinstance(exc, av.error.ExitError | TimeoutError):
        return "timed out", False
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused", False
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return "connection reset", False
    if isinstance(exc, FileNotFoundError):
        return "no such file", False
    if isinstance(exc, PermissionError):
        return "permission denied", True
    if isinstance(exc, IsADirectoryError):
        return "is a directory", True
    if isinstance(exc, av.error.HTTPNotFoundError):
        return "HTTP 404 not found", False
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return "HTTP access denied", False
    if isinstance(exc, av.error.HTTPClientError):
        return "HTTP client error", False
    if isinstance(exc, av.error.HTTPServerError):
        return "HTTP server error", False
    if isinstance(exc, av.error.InvalidDataError):
        return "invalid data", True
    if isinstance(exc, av.error.ProtocolNotFoundError):
        return "protocol not supported by this build", True
    if isinstance(exc, av.error.DecoderNotFoundError):
        return "no decoder for this codec", True
    if isinstance(exc, av.error.ArgumentError):
        # protocol_whitelist/format_whitelist refusals land here (EINVAL)
        return "invalid or not allowed input", True
    if isinstance(exc, av.error.EOFError | EOFError):
        return "stream ended", False
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "host unreachable", False
    if isinstance(exc, OSError) and exc.errno == errno.ETIMEDOUT:
        return "timed out", False
    if isinstance(exc, av.error.FFmpegError):
        return (exc.strerror or type(exc).__name__).lower()[:80], False
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc))[:80], False
    return f"{type(exc).__name__}: {exc}"[:80], False


class _Failure(Exception):
    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class PullInput:
    """Pull ``url`` into ``source`` from a daemon thread, reconnecting with backoff.

    ``realtime``: None (auto) paces by timestamps when the input has a known duration and is
    not a live protocol (files, MP4 over HTTP, VOD HLS); True/False force it. ``options`` are
    extra FFmpeg container options (trusted config only; whitelist keys are forced).
    ``loop_files``: replay finite inputs from the start at their end, else the source ends.
    ``allowed_file_roots``: directories local files may come from (default: none).
    """

    def __init__(self, source: Source, url: str, *, backoff_s: float = 1.0,
                 backoff_max_s: float = 30.0, realtime: bool | None = None,
                 options: dict[str, str] | None = None, loop_files: bool = True,
                 allowed_file_roots: Iterable[str | os.PathLike[str]] = (),
                 open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S,
                 read_timeout_s: float = DEFAULT_READ_TIMEOUT_S) -> None:
        problem = validate_pull_url(url, allowed_file_roots=allowed_file_roots)
        if problem is not None:
            raise ValueError(problem)
        if backoff_s <= 0 or backoff_max_s < backoff_s:
            raise ValueError("need 0 < backoff_s <= backoff_max_s")
        self.source = source
        self.url = url
        self.scheme = _scheme_of(url) or "file"
        local = local_path_of(url)
        self._target = f"file:{local}" if local is not None else url
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.realtime = realtime
        self.loop_files = loop_files
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.options = self._build_options(options or {})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened_at: float | None = None  # monotonic time of the last successful open
        self._resampler: av.AudioResampler | None = None

    def _build_options(self, extra: dict[str, str]) -> dict[str, str]:
        s = self.scheme
        us = str(int(self.read_timeout_s * 1_000_000))
        opts: dict[str, str] = {}
        if s in ("http", "https", "tcp", "udp", "srt", "rtsp", "rtsps"):
            opts["timeout"] = us  # socket I/O timeout in µs (rtmp's 'timeout' means listen!)
        if s in ("rtsp", "rtsps"):
            opts["rtsp_transport"] = "tcp"
        if s == "udp":
            opts["overrun_nonfatal"] = "1"
        if s != "file":
            opts["rw_timeout"] = us
        opts.update({str(k): str(v) for k, v in extra.items() if k not in FORCED_OPTIONS})
        opts["protocol_whitelist"] = PROTOCOL_WHITELIST[s]
        opts["format_whitelist"] = FORMAT_WHITELIST
        opts["enable_drefs"] = "0"  # mov: never follow references to other files
        return opts

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("PullInput already started")
        self.source.info = {"url": redact_url(self.url), "format": None, "realtime": None,
                            "loops": 0, "reconnects": 0, "retry_in_s": None}
        self._thread = threading.Thread(
            target=self._run, daemon=True,
            name=f"pull-{self.source.production_id}-{self.source.id}")
        self._thread.start()

    def stop_sync(self, wait_s: float = 2.0) -> None:
        """Ask the worker to stop and wait up to ``wait_s`` seconds.

        Backoff waits, pacing waits and the demux loop notice at once. PyAV exposes no
        user interrupt callback, only its open/read timeouts, so a worker blocked inside
        FFmpeg (a server that accepts and stays silent) leaves at the latest when that
        timeout fires; it writes nothing to the source after stop."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(wait_s)

    async def stop(self, wait_s: float = 2.0) -> None:
        self._stop.set()
        t = self._thread
        if t is not None and t.is_alive():
            await asyncio.to_thread(t.join, wait_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- worker --------------------------------------------------------------------------
    def _set_state(self, state: SourceState, error: str | None = None) -> None:
        if not self._stop.is_set():
            self.source.set_state(state, error=error)

    def _run(self) -> None:
        attempt = 0
        src = self.source
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                ended = self._run_once()
            except _Failure as f:
                message, permanent = f.message, f.permanent
            except Exception as exc:  # any failure means "retry later"
                message, permanent = describe_error(exc)
                if not isinstance(exc, av.error.FFmpegError | OSError):
                    log.exception("pull %s/%s failed", src.production_id, src.id)
            else:
                if ended:
                    self._set_state("ended")
                    return
                continue  # stopped
            if self._stop.is_set():
                return
            if self._ran_live_for(started) > BACKOFF_RESET_S:
                attempt = 0
            delay = min(self.backoff_max_s, self.backoff_s * 2 ** attempt)
            attempt += 1
            log.info("pull %s/%s: %s; retry in %.1f s", src.production_id, src.id,
                     message, delay)
            src.info["reconnects"] += 1
            src.info["retry_in_s"] = delay
            self._set_state("error" if permanent else "connecting", error=message)
            self._stop.wait(delay)

    def _ran_live_for(self, started: float) -> float:
        opened = self._opened_at
        return time.monotonic() - opened if opened is not None and opened >= started else 0.0

    def _run_once(self) -> bool:
        """Open and pull until failure (raises), stop (returns False) or the end of a finite,
        non-looping input (returns True)."""
        src = self.source
        self._opened_at = None
        container = av.open(self._target, mode="r", container_options=self.options,
                            timeout=(self.open_timeout_s, self.read_timeout_s))
        try:
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            if video is None and audio is None:
                raise _Failure("no audio or video stream", permanent=True)
            if video is not None:
                video.codec_context.thread_type = "AUTO"
            finite = (self.scheme not in LIVE_SCHEMES and container.duration is not None
                      and container.duration > 0)
            realtime = finite if self.realtime is None else self.realtime
            if self._stop.is_set():
                return False
            self._opened_at = time.monotonic()
            src.video_codec = video.codec_context.name if video is not None else None
            src.audio_codec = audio.codec_context.name if audio is not None else None
            src.info["format"] = container.format.name
            src.info["realtime"] = realtime
            src.info["retry_in_s"] = None
            src.error = None
            if src.state == "error":
                src.set_state("connecting")  # push_video moves connecting → live
            if video is None:
                src.set_state("live")  # audio only: no video frame will do it
            self._resampler = None
            streams = [s for s in (video, audio) if s is not None]
            while True:
                self._pull(container, streams, realtime)
                if self._stop.is_set():
                    return False
                if not finite:
                    raise _Failure("stream ended")
                if not self.loop_files:
                    return True
                try:
                    container.seek(0)
                except Exception as exc:  # not seekable: reopen instead
                    raise _Failure(f"cannot loop: {describe_error(exc)[0]}") from exc
                src.info["loops"] += 1
        finally:
            container.close()

    def _pull(self, container: Any, streams: list[Any], realtime: bool) -> None:
        """Demux and decode until EOF (returns) or stop (returns)."""
        src, stop = self.source, self._stop
        anchor: tuple[float, float] | None = None  # (monotonic, media seconds)
        bad = 0
        for packet in container.demux(streams):
            if stop.is_set():
                return
            arrived = time.time()
            if packet.size:
                src.add_bytes(packet.size)
            try:
                frames = packet.decode()
                bad = 0
            except av.error.FFmpegError as exc:
                if isinstance(exc, av.error.EOFError):
                    continue
                bad += 1
                src.count_dropped()
                if bad >= MAX_CONSECUTIVE_DECODE_ERRORS:
                    raise _Failure(f"decoding failed: {describe_error(exc)[0]}") from exc
                continue
            for frame in frames:
                if realtime and frame.time is not None:
                    t = float(frame.time)
                    now = time.monotonic()
                    if anchor is None:
                        anchor = (now, t)
                    wait = anchor[0] + (t - anchor[1]) - now
                    if wait > PACE_MAX_AHEAD_S or wait < -PACE_MAX_BEHIND_S:
                        anchor, wait = (now, t), 0.0  # timestamp jump or too slow
                    if wait > 0 and stop.wait(wait):
                        return
                if stop.is_set():
                    return
                if isinstance(frame, av.VideoFrame):
                    if frame.format.name != "yuv420p":
                        frame = frame.reformat(format="yuv420p")
                    src.push_video(frame, arrived=arrived, decoded=time.time())
                else:
                    self._push_audio(frame)

    def _push_audio(self, frame: av.AudioFrame) -> None:
        """Normalise to 48 kHz stereo flt here, so the Source's own resampler always sees one
        format even when a reconnect or an HLS variant switch changes the input's format."""
        try:
            if self._resampler is None:
                raise ValueError("no resampler yet")
            out = self._resampler.resample(frame)
        except ValueError:  # first frame, or the input format changed
            self._resampler = av.AudioResampler(format="flt", layout="stereo",
                                                rate=AUDIO_RATE)
            out = self._resampler.resample(frame)
        for f in out:
            self.source.push_audio(f)
