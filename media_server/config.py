"""Typed, strict configuration.

`configs/default.toml` is read into frozen dataclasses. Unknown keys and values of the wrong
type or out of range are rejected with the dotted key named. Environment variables
``SCENECLOUD_<SECTION>_<KEY>`` (e.g. ``SCENECLOUD_SERVER_PORT=9000``) override the file;
``SCENECLOUD_ADMIN_TOKEN`` is a short alias for ``SCENECLOUD_SERVER_ADMIN_TOKEN``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hls_packager.config import HlsConfig

REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid; the message names the key."""


@dataclass(frozen=True)
class IceServer:
    urls: tuple[str, ...] = ()
    username: str = ""
    credential: str = ""

    def __post_init__(self) -> None:
        if not self.urls:
            raise ConfigError("urls: at least one STUN/TURN URL is needed")
        for url in self.urls:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ConfigError(f"urls: {url!r} is not a stun:/turn: URL")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "data"
    # Empty: a random token is generated on first start and kept in <data_dir>/admin_token.
    admin_token: str = ""
    # Origins allowed to call WHIP/API from a browser ("*" = any).
    cors_origins: tuple[str, ...] = ("*",)
    # Upper bound for any JSON request body.
    max_json_bytes: int = 65536
    log_level: str = "INFO"
    # GET /metrics without a token (for a Prometheus on a private network); default: admin.
    metrics_public: bool = False
    # Access log: "all", "api" (everything but the high-rate /hls/ and /static/ requests — a
    # thousand LL-HLS viewers make ten thousand requests a second) or "off".
    access_log: str = "api"
    # A second listener that serves only /hls/ with a lean HTTP/1.1 server (the HLS edge,
    # hls_packager/edge.py): thousands of LL-HLS viewers on one core. 0 = off (HLS is served
    # on the main port only). Scene pages then load the stream from this port.
    hls_port: int = 0
    # Base URL scene pages load HLS from when it is not this server's own origin or hls_port,
    # e.g. "https://cdn.example.com" (a CDN or TLS proxy in front of the edge). Empty = derive.
    hls_public_url: str = ""

    def __post_init__(self) -> None:
        _check_range("port", self.port, 0, 65535)
        _check_range("hls_port", self.hls_port, 0, 65535)
        if self.hls_port and self.hls_port == self.port:
            raise ConfigError("hls_port: must differ from port")
        if self.hls_public_url and not re.match(r"^https?://[^/\s?#]+$",
                                                self.hls_public_url.rstrip("/")):
            raise ConfigError(f"hls_public_url: {self.hls_public_url!r} must be "
                              "http(s)://host[:port] (no path)")
        _check_range("max_json_bytes", self.max_json_bytes, 1024, 16 * 1024 * 1024)
        if self.admin_token and len(self.admin_token) < 16:
            raise ConfigError("admin_token: must be at least 16 characters (or empty)")
        if self.access_log not in ("all", "api", "off"):
            raise ConfigError(f"access_log: {self.access_log!r} is not one of all, api, off")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("log_level: one of DEBUG, INFO, WARNING, ERROR")


@dataclass(frozen=True)
class IngestConfig:
    # Largest accepted SDP offer (WHIP POST body).
    max_sdp_bytes: int = 65536
    # Default limit of sources (all kinds) in one production.
    max_sources: int = 16
    # A live source with no new video frame for this long is "stalled".
    stall_timeout_s: float = 3.0
    # A WHIP session whose ICE/DTLS does not connect within this time is closed.
    connect_timeout_s: float = 15.0
    # A connected WHIP session that delivers no audio or video for this long is closed (the
    # publisher is gone: network lost, app killed). It can come back under the same name.
    session_idle_timeout_s: float = 15.0
    # Decoded frames waiting between aiortc's decoder and our source; older ones are dropped.
    video_queue_frames: int = 4
    # Audio kept per source (48 kHz stereo), the oldest samples are dropped past it.
    audio_buffer_ms: int = 1000
    # WHIP audio jitter buffer: packets (20 ms each) held before playout starts. aiortc's own
    # default is 4 (80 ms), which leaves audio that much behind video; 2 keeps A/V within a
    # frame on a good network. Raise it for jittery networks (latency lab: a knob to sweep).
    audio_jitter_packets: int = 2
    # Seconds between pull-source reconnect attempts: first, doubling up to max.
    pull_backoff_s: float = 1.0
    pull_backoff_max_s: float = 30.0
    # Directories whose files a pull source may open (local paths are refused elsewhere).
    pull_file_roots: tuple[str, ...] = ()
    # STUN/TURN servers advertised to WHIP clients (Link headers) and used by the server.
    ice_servers: tuple[IceServer, ...] = ()
    # Addresses the server gathers ICE host candidates on; empty = every interface address
    # (aioice's default, loopback excluded). Set ["127.0.0.1"] for local-only use.
    ice_host_addresses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_range("max_sdp_bytes", self.max_sdp_bytes, 1024, 1024 * 1024)
        for addr in self.ice_host_addresses:
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise ConfigError(f"ice_host_addresses: {addr!r} is not an IP address") from None
        _check_range("max_sources", self.max_sources, 1, 256)
        _check_range("stall_timeout_s", self.stall_timeout_s, 0.1, 3600)
        _check_range("connect_timeout_s", self.connect_timeout_s, 1, 600)
        _check_range("session_idle_timeout_s", self.session_idle_timeout_s, 1, 3600)
        _check_range("video_queue_frames", self.video_queue_frames, 1, 120)
        _check_range("audio_buffer_ms", self.audio_buffer_ms, 100, 10000)
        _check_range("audio_jitter_packets", self.audio_jitter_packets, 0, 15)
        _check_range("pull_backoff_s", self.pull_backoff_s, 0.05, 600)
        _check_range("pull_backoff_max_s", self.pull_backoff_max_s, self.pull_backoff_s, 3600)


@dataclass(frozen=True)
class VideoConfig:
    """Default program format of a new production (a POST may override it)."""

    width: int = 1280
    height: int = 720
    fps: int = 30

    def __post_init__(self) -> None:
        _check_range("width", self.width, 16, 7680)
        _check_range("height", self.height, 16, 4320)
        _check_range("fps", self.fps, 1, 120)
        if self.width % 2 or self.height % 2:
            raise ConfigError("width/height: must be even (yuv420p)")


@dataclass(frozen=True)
class StoreConfig:
    # "sqlite" (embedded, in data_dir) or "redis" (several nodes; later).
    backend: str = "sqlite"
    redis_url: str = "redis://127.0.0.1:6379/0"

    def __post_init__(self) -> None:
        if self.backend not in ("sqlite", "redis"):
            raise ConfigError(f"backend: {self.backend!r} is not one of sqlite, redis")


@dataclass(frozen=True)
class SwitcherConfig:
    # A stalled source freezes on its last frame, then shows "signal lost" after this long.
    signal_lost_after_s: float = 2.0
    # Late output clock: catch up at most this many frames, then skip (indices stay continuous).
    max_catchup_frames: int = 3
    # Program frames queued for the packager; the oldest is dropped (counted) past it.
    output_queue_frames: int = 4

    def __post_init__(self) -> None:
        _check_range("signal_lost_after_s", self.signal_lost_after_s, 0.1, 3600)
        _check_range("max_catchup_frames", self.max_catchup_frames, 0, 60)
        _check_range("output_queue_frames", self.output_queue_frames, 1, 120)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    switcher: SwitcherConfig = field(default_factory=SwitcherConfig)
    hls: HlsConfig = field(default_factory=HlsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)

    def replace(self, section: str, **changes: Any) -> Config:
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section),
                                                                          **changes)})


def _check_range(key: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ConfigError(f"{key}: {value!r} is out of range [{lo}, {hi}]")


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """Check/convert one TOML value against a field type; raise ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return tuple(_coerce(f"{key}[{i}]", item_tp, v) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return _build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp!r}")  # pragma: no cover - programming error


def _build(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in names:
            where = f"{prefix}.{k}" if prefix else k
            raise ConfigError(f"{where}: unknown key")
    kwargs = {}
    for name in names:
        if name in data:
            where = f"{prefix}.{name}" if prefix else name
            kwargs[name] = _coerce(where, hints[name], data[name])
    try:
        return cls(**kwargs)
    except ValueError as exc:  # ConfigError, or a section's own error (e.g. HlsConfigError)
        raise ConfigError(f"{prefix}.{exc}" if prefix else str(exc)) from None


def _env_value(raw: str, tp: Any) -> Any:
    if tp is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if tp is int:
        return int(raw)
    if tp is float:
        return float(raw)
    if typing.get_origin(tp) is tuple:
        (item_tp, _) = typing.get_args(tp)
        if dataclasses.is_dataclass(item_tp):
            raise ValueError("set this list in the config file")
        return [s.strip() for s in raw.split(",") if s.strip()]
    return raw


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Collect ``SCENECLOUD_<SECTION>_<KEY>`` variables into a nested dict."""
    out: dict[str, dict[str, Any]] = {}
    section_types = typing.get_type_hints(Config)
    if "SCENECLOUD_ADMIN_TOKEN" in environ:
        out.setdefault("server", {})["admin_token"] = environ["SCENECLOUD_ADMIN_TOKEN"]
    for var, raw in environ.items():
        if not var.startswith("SCENECLOUD_") or var == "SCENECLOUD_ADMIN_TOKEN":
            continue
        rest = var[len("SCENECLOUD_"):].lower()
        for section, stp in section_types.items():
            if rest.startswith(section + "_"):
                key = rest[len(section) + 1:]
                hints = typing.get_type_hints(stp)
                if key not in hints:
                    raise ConfigError(f"{var}: {section}.{key} is not a config key")
                try:
                    out.setdefault(section, {})[key] = _env_value(raw, hints[key])
                except ValueError as exc:
                    raise ConfigError(f"{var}: {exc}") from None
                break
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(merged.get(k), Mapping):
            merged[k] = _merge(dict(merged[k]), v)
        else:
            merged[k] = v
    return merged


def load_config(path: str | Path | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Read a TOML file (or only defaults when `path` is None) and apply env overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
    data = _merge(data, env_overrides(os.environ if environ is None else environ))
    return _build(Config, data)


def config_to_dict(cfg: Any) -> Any:
    """Plain dict of a config (tuples as lists), e.g. to compare with a TOML file."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, tuple | list):
        return [config_to_dict(v) for v in cfg]
    return cfg


__all__ = ["Config", "ConfigError", "HlsConfig", "IceServer", "IngestConfig", "ServerConfig",
           "StoreConfig", "SwitcherConfig", "VideoConfig", "config_to_dict", "load_config"]
