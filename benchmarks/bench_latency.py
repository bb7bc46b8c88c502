"""Glass-to-glass latency of the whole pipeline, measured with `scenecloud probe`.

    .venv/bin/python -m benchmarks.bench_latency [--inputs 1,2,4] [--sweep] [--seconds 15]

Each point starts its own server process (`scenecloud serve` with a config file written for the
point), creates a 1280x720@30 production and runs the probe against it: WHIP in (FFmpeg's whip
muxer, stamped frames) → switcher → LL-HLS (default 720p + 360p ladder, 200 ms parts) → a
player-like client decoding parts. For N inputs > 1, N-1 more WHIP publishers replay a 720p30
H.264 clip and the program is a 2x2 grid with the probe in the top-left quadrant. Per point:
glass-to-glass p50/p95/max, A/V offset, frames lost/frozen, the server's per-stage breakdown
(from its own marks, /api/productions/{id}/latency) and the server's CPU.

Side by side in the same run (the 1/2/4-input points; `--no-ffmpeg-hls` leaves it out), the
same program frames also go to FFmpeg's `hls` muxer (benchmarks/ffmpeg_hls_tap.py: libx264 at
the size, bitrate and preset of the rendition the probe watches, 1 s fMP4 segments) and a
polling player (reloads every 50 ms, decodes each new segment, reads the same pixel stamps):
glass-to-glass of both, measured the same way (stamped capture time → frame decoded at the
client), and FFmpeg ÷ ours. The server CPU column leaves the FFmpeg encoder thread out.

Stage spread: p95 / p50 of each server stage (the issue's target: ≤ 2), stages over flagged.

`--sweep` varies one knob at a time from the defaults: part duration, segment duration, x264
preset, ladder size and the WHIP audio jitter buffer — what each buys in latency and CPU.
Writes benchmarks/results/latency.json (with the load average before/after each point) and
prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.bench_whip_ingest import CACHE, make_clip
from benchmarks.common import ROOT, http, proc_cpu, server_process, stop_all
from benchmarks.ffmpeg_hls_tap import DirReader, read_stats
from latency_lab import report as probe_report

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


# the rendition the probe watches (the lowest bandwidth rung of both ladders): FFmpeg's hls
# muxer encodes the program at this size and bitrate
WATCHED = {"size": "640x360", "bitrate": 600_000}
FFMPEG_POLL_S = 0.05


def run_point(name: str, cfg: str, *, inputs: int, seconds: float, port: int,
              ffmpeg_preset: str | None = None) -> dict[str, Any]:
    """One point; with `ffmpeg_preset`, FFmpeg's hls muxer on the same program too."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "config.toml"
        cfg_path.write_text(cfg)
        pubs: list[subprocess.Popen[bytes]] = []
        tap_dir = Path(tmp) / "ffmpeg-hls"
        command = None if ffmpeg_preset is None else [
            sys.executable, "-m", "benchmarks.ffmpeg_hls_tap", "--tap-dir", str(tap_dir),
            "--size", WATCHED["size"], "--bitrate", str(WATCHED["bitrate"]),
            "--preset", ffmpeg_preset]
        load0 = os.getloadavg()
        with server_process(Path(tmp) / "data", ADMIN, port=port, config=cfg_path,
                            command=command) as (base, spid):
            reader = None
            try:
                prod = http("POST", f"{base}/api/productions", ADMIN, {"id": "lab"})
                d = prod["director_token"]
                probe_env = {**os.environ, "SCENECLOUD_PUBLISH_TOKEN": prod["publish_token"]}
                args = [str(ROOT / ".venv/bin/scenecloud"), "probe", base, "--production",
                        "lab", "--seconds", str(seconds), "--json"]
                region = None
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
                    region = (0.0, 0.0, 0.5, 0.5)  # the probe is the top-left quadrant
                    args += ["--region", ",".join(f"{v:g}" for v in region)]
                else:
                    probe_env["SCENECLOUD_DIRECTOR_TOKEN"] = d
                if ffmpeg_preset is not None:
                    reader = DirReader(tap_dir / "lab" / "index.m3u8", region,
                                       FFMPEG_POLL_S).start()
                tap0 = (read_stats(tap_dir / "lab") or {}) if reader else {}
                # the server's stages while the probe still publishes: once its source stops,
                # the program repeats its last frame with that frame's old marks until "signal
                # lost" (2 s), and those repeats would count as switcher waits of up to 2 s
                live: dict[str, Any] = {}
                snap = threading.Timer(seconds - 0.5, snapshot, (base, d, live))
                snap.start()
                cpu0, t0 = proc_cpu(spid), time.monotonic()
                try:
                    res = subprocess.run(args, env=probe_env, cwd=ROOT, capture_output=True,
                                         timeout=seconds + 90)
                finally:
                    snap.cancel()
                    snap.join()
                wall = time.monotonic() - t0
                # the tap's figure is rewritten once a segment: up to 1 s stale
                tap = (read_stats(tap_dir / "lab") or {}) if reader else {}
                tap_cpu = tap.get("cpu_s", 0.0) - tap0.get("cpu_s", 0.0)
                cpu = (proc_cpu(spid) - cpu0 - tap_cpu) / wall
                if res.returncode != 0:
                    return {"name": name, "inputs": inputs, "error": res.stderr.decode()[-500:]}
                stages = live.get("latency") or http(
                    "GET", f"{base}/api/productions/lab/latency", d)
                if reader is not None:
                    time.sleep(2.5)  # FFmpeg's last segment with stamped frames: ≤ 1 s + muxing
                report = json.loads(res.stdout)
                out = {"name": name, "inputs": inputs, "server_cpu_cores": round(cpu, 2),
                       "load_avg_before": [round(v, 2) for v in load0],
                       "load_avg_after": [round(v, 2) for v in os.getloadavg()],
                       "probe": report, "server_stages": stages["renditions"],
                       "server_stages_when": "live" if live.get("latency") else "after",
                       "stage_spread": probe_report.stage_spread(stages),
                       "stage_buckets": live.get("buckets")}
                if reader is not None:
                    reader.stop()
                    out["ffmpeg_hls"] = ffmpeg_figures(reader, tap, tap_cpu / wall,
                                                       ffmpeg_preset)
                    out["ffmpeg_over_ours"] = ratios(report["glass_to_glass_ms"],
                                                     out["ffmpeg_hls"]["glass_to_glass_ms"])
                return out
            finally:
                if reader is not None:
                    reader.stop()
                stop_all(pubs)


def snapshot(base: str, director: str, into: dict[str, Any]) -> None:
    """The latency document and the stage histograms' buckets (/metrics), now."""
    try:
        into["latency"] = http("GET", f"{base}/api/productions/lab/latency", director)
        req = urllib.request.Request(f"{base}/metrics",
                                     headers={"Authorization": f"Bearer {ADMIN}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            into["buckets"] = stage_buckets(r.read().decode())
    except OSError:
        pass


def stage_buckets(text: str) -> dict[str, dict[str, dict[str, int]]]:
    """Per rendition and stage, how many frames fell in each histogram bucket (not
    cumulative), keyed by the bucket's upper bound in ms, from Prometheus text."""
    cum: dict[str, dict[str, list[tuple[float, int]]]] = {}
    for line in text.splitlines():
        if not line.startswith("scenecloud_stage_latency_seconds_bucket{"):
            continue
        labels, value = line[line.index("{") + 1:].rsplit("} ", 1)
        lab = dict(kv.split("=", 1) for kv in labels.split(","))
        lab = {k: v.strip('"') for k, v in lab.items()}
        le = float("inf") if lab["le"] == "+Inf" else float(lab["le"])
        cum.setdefault(lab["rendition"], {}).setdefault(lab["stage"], []).append(
            (le, int(float(value))))
    out: dict[str, dict[str, dict[str, int]]] = {}
    for rend, stages in cum.items():
        for stage, pairs in stages.items():
            pairs.sort()
            prev, b = 0, {}
            for le, c in pairs:
                b["inf" if le == float("inf") else f"{le * 1000:g}"] = c - prev
                prev = c
            out.setdefault(rend, {})[stage] = b
    return out


def ffmpeg_figures(reader: DirReader, tap: dict[str, Any], cpu_cores: float,
                   preset: str) -> dict[str, Any]:
    """The polling player's figures, computed like the probe's (latency_lab.report)."""
    s = probe_report.summarize(probe_report.Run(reader.samples, [], fps=30))
    return {"what": f"FFmpeg hls muxer, libx264 {WATCHED['size']} {preset} "
                    f"{WATCHED['bitrate'] // 1000}k, 1 s fMP4 segments; player polls every "
                    f"{FFMPEG_POLL_S * 1000:.0f} ms and decodes each new segment",
            "glass_to_glass_ms": s["glass_to_glass_ms"],
            "part_arrival_ms": s["part_arrival_ms"],  # capture -> segment bytes read
            "frames_lost": s["frames_lost"], "frames_frozen": s["frames_frozen"],
            "frames_stamped": s["frames_stamped"], "segments_read": reader.segments,
            "server_listed_ms": tap.get("listed_ms"),  # capture -> playlist lists it
            "segments_over_1_1_s": [d for d in tap.get("segment_s", []) if d > 1.1],
            "encoder_cpu_cores": round(cpu_cores, 2)}


def ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float | None]:
    def r(k: str) -> float | None:
        a, b = ours.get(k), theirs.get(k)
        return round(b / a, 2) if a and b is not None else None

    return {"p50": r("p50"), "p95": r("p95")}


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


def ffmpeg_row(r: dict[str, Any]) -> str | None:
    f = r.get("ffmpeg_hls")
    if not f or "error" in r:
        return None
    g, fg, x = r["probe"]["glass_to_glass_ms"], f["glass_to_glass_ms"], r["ffmpeg_over_ours"]
    lst = f.get("server_listed_ms") or {}

    def v(x: Any, fmt: str = ".0f") -> str:
        return "–" if x is None else format(x, fmt)

    return (f"| {r['name']} | {r['inputs']} | {v(g.get('p50'))} | {v(g.get('p95'))} | "
            f"{v(fg.get('p50'))} | {v(fg.get('p95'))} | {v(x['p50'], '.1f')}× / "
            f"{v(x['p95'], '.1f')}× | {g.get('count', 0)} / {fg.get('count', 0)} | "
            f"{v(lst.get('p50'))} / {v(lst.get('p95'))} | {f['encoder_cpu_cores']:.2f} |")


FFMPEG_HEADER = ("| point | inputs | ours g2g p50 ms | p95 | FFmpeg hls g2g p50 | p95 | "
                 "FFmpeg ÷ ours (p50 / p95) | frames ours / FFmpeg | FFmpeg server-side "
                 "listed p50 / p95 | FFmpeg encoder CPU |\n" + "|---" * 10 + "|")
SPREAD_STAGES = ("ingest", "switcher_wait", "composite", "encode", "packaging", "delivery")


def spread_row(r: dict[str, Any]) -> str | None:
    sp = r.get("stage_spread")
    if not sp or "error" in r:
        return None
    rend = r["probe"].get("rendition") or next(iter(r["server_stages"]), None)
    rows = {x["stage"]: x for x in sp["rows"] if x["rendition"] == rend}

    def cell(stage: str) -> str:
        x = rows.get(stage)
        if x is None or x["ratio"] is None:
            return "–" if x is None else f"– (p50 {x['p50_ms']})"
        text = f"{x['ratio']:.2f} ({x['p50_ms']:g}/{x['p95_ms']:g})"
        return f"**{text}**" if x["over"] else text

    over = [k.split("/", 1)[1] for k in sp["over"] if k.startswith(f"{rend}/")]
    return (f"| {r['name']} | {r['inputs']} | {rend} | "
            + " | ".join(cell(k) for k in SPREAD_STAGES) + f" | {', '.join(over) or 'none'} |")


SPREAD_HEADER = ("| point | inputs | rendition | " + " | ".join(SPREAD_STAGES)
                 + " | over 2× |\n|" + "---|" * (len(SPREAD_STAGES) + 4))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", default="1,2,4")
    ap.add_argument("--sweep", action="store_true", help="also sweep the knobs (1 input)")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--port", type=int, default=18480)
    ap.add_argument("--no-ffmpeg-hls", dest="ffmpeg_hls", action="store_false",
                    help="leave out FFmpeg's hls muxer on the same program (input points)")
    a = ap.parse_args()
    ff = "veryfast" if a.ffmpeg_hls else None
    points: list[tuple[str, str, int, str | None]] = [
        (f"default, {n} input(s)", config_text(), int(n), ff) for n in a.inputs.split(",") if n]
    if a.sweep:
        points += [
            ("parts 0.1 s", config_text(part=0.1), 1, None),
            ("parts 0.333 s", config_text(part=0.333, segment=1.0), 1, None),
            ("parts 0.5 s, segments 2 s", config_text(part=0.5, segment=2.0), 1, None),
            ("segments 2 s", config_text(segment=2.0), 1, None),
            ("preset ultrafast", config_text(preset="ultrafast"), 1, None),
            ("preset faster", config_text(preset="faster"), 1, None),
            ("ladder 360p only", config_text(ladder=LADDER_1), 1, None),
            ("audio jitter 4 packets (aiortc default)", config_text(audio_jitter=4), 1, None),
        ]
    results = []
    load0 = os.getloadavg()
    for i, (name, cfg, n, preset) in enumerate(points):
        r = run_point(name, cfg, inputs=n, seconds=a.seconds, port=a.port + i,
                      ffmpeg_preset=preset)
        results.append(r)
        print(row(r) if results[1:] else HEADER + "\n" + row(r), flush=True)
    ff_rows = [x for x in map(ffmpeg_row, results) if x]
    if ff_rows:
        print("\nGlass-to-glass, ours vs FFmpeg's hls muxer on the same program:\n")
        print(FFMPEG_HEADER + "\n" + "\n".join(ff_rows), flush=True)
    sp_rows = [x for x in map(spread_row, results) if x]
    if sp_rows:
        print("\nStage spread p95 / p50 (p50/p95 ms), over 2× in bold:\n")
        print(SPREAD_HEADER + "\n" + "\n".join(sp_rows), flush=True)
    load1 = os.getloadavg()
    print(f"\nload average (1/5/15 min): before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
          f"after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = {"benchmark": "latency", "machine": f"{os.cpu_count()} cores",
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "load_avg_before": [round(v, 2) for v in load0],
           "load_avg_after": [round(v, 2) for v in load1],
           "seconds_per_point": a.seconds, "points": results}
    (RESULTS / "latency.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
