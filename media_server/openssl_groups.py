"""Reach OpenSSL's SSL_CTX_set1_groups_list for a pyOpenSSL Context.

pyOpenSSL 26 / cryptography 46 bind neither SSL_CTX_set1_groups_list (a macro around
SSL_CTX_ctrl(ctx, SSL_CTRL_SET_GROUPS_LIST=92, 0, str)) nor SSL_CTX_ctrl, and the OpenSSL copy
inside cryptography's _rust.abi3.so is statically linked with hidden visibility. The wheel is
not stripped, so SSL_CTX_ctrl is located from the ELF symbol table plus the module's load
address (found through the exported PyInit__rust). It is resolved once and self-tested on a
throw-away context (a valid list must be accepted, a bogus one rejected); on any failure
`available()` is False, `error()` says why, and `set_groups_list` raises instead of guessing.

Re-check when cryptography is upgraded (pyproject pins <47: 47+ bundles OpenSSL 4.0, which has
no P-224 group at all).
"""
from __future__ import annotations

import ctypes
import struct
from typing import Any

from cryptography.hazmat.bindings import _rust
from cryptography.hazmat.bindings._rust import _openssl

SSL_CTRL_SET_GROUPS_LIST = 92
SSL_CTRL_GET_GROUPS = 90  # SSL_get1_groups (SSL*, not CTX) - unused

_ffi = _openssl.ffi
_ctrl = None
_err: str | None = None


def _elf_symbols(path: str, wanted: set[str]) -> dict[str, int]:
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise RuntimeError("not a little-endian ELF64 file")
    e_shoff, = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize)
                for i in range(e_shnum)]
    out: dict[str, int] = {}
    for sh in sections:
        sh_type = sh[1]
        if sh_type not in (2, 11):  # SHT_SYMTAB, SHT_DYNSYM
            continue
        off, size, link, entsize = sh[4], sh[5], sh[6], sh[9]
        stroff = sections[link][4]
        for i in range(size // entsize):
            st_name, st_info, _, _, st_value, _ = struct.unpack_from(
                "<IBBHQQ", data, off + i * entsize)
            if st_value == 0 or (st_info & 0xF) != 2:  # STT_FUNC
                continue
            end = data.index(b"\0", stroff + st_name)
            name = data[stroff + st_name:end].decode()
            if name in wanted:
                out[name] = st_value
    return out


def _resolve() -> None:
    global _ctrl, _err
    try:
        path = _rust.__file__
        syms = _elf_symbols(path, {"SSL_CTX_ctrl", "PyInit__rust"})
        if "SSL_CTX_ctrl" not in syms or "PyInit__rust" not in syms:
            raise RuntimeError("SSL_CTX_ctrl not in symbol table (stripped wheel?)")
        so = ctypes.CDLL(path)
        base = ctypes.cast(so.PyInit__rust, ctypes.c_void_p).value - syms["PyInit__rust"]
        addr = base + syms["SSL_CTX_ctrl"]
        _ctrl = _ffi.cast("long (*)(SSL_CTX *, int, long, void *)", addr)
        # self-test on a throw-away context: a valid list must return 1,
        # garbage must return 0
        ctx = _openssl.lib.SSL_CTX_new(_openssl.lib.TLS_method())
        try:
            ok = _ctrl(ctx, SSL_CTRL_SET_GROUPS_LIST, 0, _ffi.new("char[]", b"P-256:P-224"))
            bad = _ctrl(ctx, SSL_CTRL_SET_GROUPS_LIST, 0, _ffi.new("char[]", b"no-such-group"))
        finally:
            _openssl.lib.SSL_CTX_free(ctx)
        _openssl.lib.ERR_clear_error()
        if ok != 1 or bad != 0:
            raise RuntimeError(f"self-test failed ok={ok} bad={bad}")
    except Exception as e:
        _ctrl = None
        _err = f"{type(e).__name__}: {e}"


_resolve()


def available() -> bool:
    return _ctrl is not None


def error() -> str | None:
    return _err


def set_groups_list(context: Any, groups: bytes) -> None:
    """context: OpenSSL.SSL.Context"""
    if _ctrl is None:
        raise RuntimeError(f"SSL_CTX_set1_groups_list unavailable: {_err}")
    buf = _ffi.new("char[]", groups)
    if _ctrl(context._context, SSL_CTRL_SET_GROUPS_LIST, 0, buf) != 1:
        _openssl.lib.ERR_clear_error()
        raise ValueError(f"invalid groups list {groups!r}")
