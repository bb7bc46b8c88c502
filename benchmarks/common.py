"""Pieces every benchmark needs: a server process, JSON over HTTP, /proc figures."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def http(method: str, url: str, token: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read()
    return json.loads(text) if text else None


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server_process(data_dir: str | Path, admin: str, *, port: int | None = None,
                   config: str | Path | None = None,
                   env: Mapping[str, str] | None = None,
                   command: list[str] | None = None) -> Iterator[tuple[str, int]]:
    """`scenecloud serve` in its own process; yields (base URL, pid) once /healthz answers.
    `command` replaces `.venv/bin/scenecloud` (a launcher that takes the same arguments)."""
    port = port or free_port()
    args = [*(command or [str(ROOT / ".venv/bin/scenecloud")]), "serve", "--port", str(port),
            "--data-dir", str(data_dir)]
    if config is not None:
        args += ["--config", str(config)]
    server = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, env={
        **os.environ, "SCENECLOUD_ADMIN_TOKEN": admin, "SCENECLOUD_SERVER_LOG_LEVEL": "WARNING",
        **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"server on {base} did not start") from None
                time.sleep(0.2)
        yield base, server.pid
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def stop_all(procs: list[subprocess.Popen[bytes]], timeout: float = 10) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
