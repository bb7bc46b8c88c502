from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from media_server.config import REPO_CONFIGS, Config, ConfigError, config_to_dict, load_config


def test_default_file_equals_code_defaults() -> None:
    with open(REPO_CONFIGS / "default.toml", "rb") as f:
        shipped = tomllib.load(f)
    assert shipped == config_to_dict(Config())
    assert load_config(REPO_CONFIGS / "default.toml", environ={}) == Config()


@pytest.mark.parametrize("path", sorted(REPO_CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    assert isinstance(load_config(path, environ={}), Config)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(("text", "named"), [
    ("[server]\nprot = 1\n", "server.prot"),
    ("[servr]\nport = 1\n", "servr"),
    ("[server]\nport = 'x'\n", "server.port"),
    ("[server]\nport = 70000\n", "port"),
    ("[ingest]\nstall_timeout_s = true\n", "ingest.stall_timeout_s"),
    ("[video]\nwidth = 1279\n", "width"),
    ("[ingest]\nice_host_addresses = ['not-an-ip']\n", "ice_host_addresses"),
    ("[[ingest.ice_servers]]\nurls = ['http://x']\n", "urls"),
    ("[[ingest.ice_servers]]\nurls = ['stun:x']\npassword = 'p'\n", "password"),
    ("[store]\nbackend = 'mongo'\n", "backend"),
])
def test_bad_values_name_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(write(tmp_path, text), environ={})


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"c\.toml"):
        load_config(write(tmp_path, "[server\n"), environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_env_overrides(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[server]\nport = 9000\n"), environ={
        "SCENECLOUD_SERVER_PORT": "9100",
        "SCENECLOUD_ADMIN_TOKEN": "a-long-enough-admin-token",
        "SCENECLOUD_INGEST_STALL_TIMEOUT_S": "1.5",
        "SCENECLOUD_INGEST_ICE_HOST_ADDRESSES": "127.0.0.1, ::1",
        "UNRELATED": "x",
    })
    assert cfg.server.port == 9100
    assert cfg.server.admin_token == "a-long-enough-admin-token"
    assert cfg.ingest.stall_timeout_s == 1.5
    assert cfg.ingest.ice_host_addresses == ("127.0.0.1", "::1")


def test_env_rejects_unknown_and_bad(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SCENECLOUD_SERVER_PROT"):
        load_config(None, environ={"SCENECLOUD_SERVER_PROT": "1"})
    with pytest.raises(ConfigError, match="SCENECLOUD_SERVER_PORT"):
        load_config(None, environ={"SCENECLOUD_SERVER_PORT": "eighty"})
    with pytest.raises(ConfigError, match="admin_token"):
        load_config(None, environ={"SCENECLOUD_ADMIN_TOKEN": "short"})


def test_ice_servers_table(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[[ingest.ice_servers]]\nurls = ['turn:t.example:3478']\n"
                                      "username = 'u'\ncredential = 'c'\n"), environ={})
    assert cfg.ingest.ice_servers[0].urls == ("turn:t.example:3478",)
    assert cfg.ingest.ice_servers[0].username == "u"
