"""Glass-to-glass latency of the whole pipeline, measured with `scenecloud probe`.

    .venv/bin/python -m benchmarks.bench_latency [--inputs 1,2,4] [--sweep] [--seconds 15]

Each point starts its own server process (`scenecloud serve` with a config file written for the
point), creates a 1280x720@30 production and runs the probe against it: WHIP in (FFmpeg's whip
muxer, stamped frames) → switcher → LL-HLS (default 720p + 360p ladder, 200 ms parts) → a
player-like client decoding parts. For N inputs > 1, N-1 more WHIP publishers replay a 720p30
H.264 clip and the program is a 2x2 grid with the probe in the top-left quadrant. Per point:
glass-to-glass p50/p95/max, A/V offset, frames lost/frozen, the server's per-stage breakdown
(from its own marks, /api/productions/{id}/latency) and the server's CPU.

`--sweep` varies one knob at a time from the defaults: part duration, segment duration, x264
preset, ladder size and the WHIP audio jitter buffer — what each buys in latency and CPU.
Writes benchmarks/results/latency.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_whip_ingest import CACHE, make_clip
from benchmarks.common import ROOT, http, proc_cpu, server_process, stop_all

RESULTS = ROOT / "benchmarks" / "results"
ADMIN = "bench-admin-" + secrets.token_hex(8)

LADDER_2 = """
[[hls.renditions]]
name = "720p"
width = 1280
height = 720
video_bitrate = 2500000

[[hls.renditions]]
name = "360p"
width = 640
height = 360
video_bitrate = 600000
audio_bitrate = 96000
"""
LADDER_1 = """
[[hls.renditions]]
name = "360p"
width = 640
height = 360
video_bitrate = 600000
audio_bitrate = 96000
"""


def config_text(part: float = 0.2, segment: float = 1.0, preset: str = "veryfast",
                ladder: str = LADDER_2, audio_jitter: int = 2) -> str:
    return (f"[ingest]\nice_host_addresses = [\"127.0.0.1\"]\naudio_jitter_packets = "
            f"{audio_jitter}\n\n[hls]\npart_target_s = {part}\nsegment_target_s = {segment}\n"
            f"preset = \"{preset}\"\n{ladder}")


def run_point(name: str, cfg: str, *, inputs: int, seconds: float, port: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "config.toml"
        cfg_path.write_text(cfg)
        pubs: list[subprocess.Popen[bytes]] = []
        with server_process(Path(tmp) / "data", ADMIN, port=port, config=cfg_path) as (base,
                                                                                       spid):
            try:
                prod = http("POST", f"{base}/api/productions", ADMIN, {"id": "lab"})
                d = prod["director_token"]
                probe_env = {**os.environ, "SCENECLOUD_PUBLISH_TOKEN": prod["publish_token"]}
                args = [str(ROOT / ".venv/bin/scenecloud"), "probe", base, "--production",
                        "lab", "--seconds", str(seconds), "--json"]
                if inputs > 1:
                    clip = make_clip(CACHE / "720p30_high.mkv")
                    pubs = [subprocess.Popen(
                        [sys.executable, "-m", "benchmarks.whip_replay", str(clip),
                         f"{base}/whip/lab/cam{i}", "--token", prod["publish_token"],
                         "--seconds", str(seconds + 60)], cwd=ROOT, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL) for i in range(1, inputs)]
                    names = ["probe"] + [f"cam{i}" for i in range(1, 4)]
                    http("POST", f"{base}/api/productions/lab/switcher", d,
                         {"op": "layout", "name": "grid", "kind": "grid2x2", "sources": names})
                    http("POST", f"{base}/api/productions/lab/switcher", d,
                         {"op": "program", "layout": "grid"})
                    args += ["--region", "0,0,0.5,0.5"]  # the probe is the top-left quadrant
                else:
                    probe_env["SCENECLOUD_DIRECTOR_TOKEN"] = d
                cpu0, t0 = proc_cpu(spid), time.monotonic()
                res = subprocess.run(args, env=probe_env, cwd=ROOT, capture_output=True,
                                     timeout=seconds + 90)
                cpu = (proc_cpu(spid) - cpu0) / (time.monotonic() - t0)
                if res.returncode != 0:
                    return {"name": name, "inputs": inputs, "error": res.stderr.decode()[-500:]}
                report = json.loads(res.stdout)
                stages = http("GET", f"{base}/api/productions/lab/latency", d)
                return {"name": name, "inputs": inputs, "server_cpu_cores": round(cpu, 2),
                        "probe": report, "server_stages": stages["renditions"]}
            finally:
                stop_all(pubs)


def row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"| {r['name']} | {r['inputs']} | error: {r['error'].strip().splitlines()[-1]} |"
    p = r["probe"]
    g, av = p.get("glass_to_glass_ms", {}), p.get("av_offset_ms") or {}
    fr = {"lost": p.get("frames_lost", "–"), "frozen": p.get("frames_frozen", "–")}
    rend = next(iter(r["server_stages"].values()), {}) if r["server_stages"] else {}

    def st(k: str) -> str:
        v = rend.get(k, {}).get("p50_ms")
        return "–" if v is None else f"{v:.0f}"

    return (f"| {r['name']} | {r['inputs']} | {g.get('p50', 0):.0f} | {g.get('p95', 0):.0f} | "
            f"{g.get('max', 0):.0f} | {av.get('p50', float('nan')):.0f} | "
            f"{fr.get('lost', '–')}/{fr.get('frozen', '–')} | {st('ingest')} | "
            f"{st('switcher_wait')} | {st('encode')} | {st('packaging')} | {st('total')} | "
            f"{r['server_cpu_cores']:.2f} |")


HEADER = ("| point | inputs | g2g p50 ms | p95 | max | A/V ms (+ audio late) | lost/frozen | "
          "ingest | switcher wait | encode | packaging | server total | server CPU |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", default="1,2,4")
    ap.add_argument("--sweep", action="store_true", help="also sweep the knobs (1 input)")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--port", type=int, default=18480)
    a = ap.parse_args()
    points: list[tuple[str, str, int]] = [
        (f"default, {n} input(s)", config_text(), int(n)) for n in a.inputs.split(",") if n]
    if a.sweep:
        points += [
            ("parts 0.1 s", config_text(part=0.1), 1),
            ("parts 0.333 s", config_text(part=0.333, segment=1.0), 1),
            ("parts 0.5 s, segments 2 s", config_text(part=0.5, segment=2.0), 1),
            ("segments 2 s", config_text(segment=2.0), 1),
            ("preset ultrafast", config_text(preset="ultrafast"), 1),
            ("preset faster", config_text(preset="faster"), 1),
            ("ladder 360p only", config_text(ladder=LADDER_1), 1),
            ("audio jitter 4 packets (aiortc default)", config_text(audio_jitter=4), 1),
        ]
    results = []
    for i, (name, cfg, n) in enumerate(points):
        r = run_point(name, cfg, inputs=n, seconds=a.seconds, port=a.port + i)
        results.append(r)
        print(row(r) if results[1:] else HEADER + "\n" + row(r), flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = {"benchmark": "latency", "machine": f"{os.cpu_count()} cores",
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "seconds_per_point": a.seconds, "points": results}
    (RESULTS / "latency.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
