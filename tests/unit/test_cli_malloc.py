"""The server keeps glibc's mmap threshold fixed unless the operator set it."""

from __future__ import annotations

import platform

import pytest

from media_server.cli import fix_mmap_threshold


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_applied_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert fix_mmap_threshold() is True


@pytest.mark.parametrize("var, value", [("MALLOC_MMAP_THRESHOLD_", "65536"),
                                        ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")])
def test_operator_setting_left_alone(monkeypatch: pytest.MonkeyPatch, var: str,
                                     value: str) -> None:
    monkeypatch.setenv(var, value)
    assert fix_mmap_threshold() is False
