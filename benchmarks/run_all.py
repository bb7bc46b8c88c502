"""Run the benchmark suite: `make bench` (or `.venv/bin/python -m benchmarks.run_all`).

Each benchmark runs its peer side by side in the same run (FFmpeg's filter graph, FFmpeg's hls
muxer, bare PyAV decoding, a production-alone baseline) and writes
`benchmarks/results/<name>.json`; their tables are collected into
`benchmarks/results/summary.md`. `--quick` shortens every run (a smoke test of the suite);
`--long` adds the 10-minute switcher sustain run and a 30-minute probe run (drift).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def suite(quick: bool, long: bool) -> list[tuple[str, list[str]]]:
    q = quick
    runs = [
        ("compositor vs FFmpeg filter graph", ["bench_compositor"] + (["--quick"] if q else [])),
        ("switcher sustain (4 sources, 2x2, overlays)",
         ["bench_switcher_sustain", "--seconds", "600" if long else "10" if q else "60"]),
        ("WHIP ingest (N x 720p30)",
         ["bench_whip_ingest"] + (["--counts", "0,1,4", "--window", "8"] if q else [])),
        ("WHIP reconnect churn (server memory per reconnect vs one session)",
         ["bench_whip_churn"] + (["--quick"] if q else [])),
        ("LL-HLS server latency vs FFmpeg hls muxer",
         ["bench_hls_latency", "--seconds", "8" if q else "20"]),
        ("LL-HLS load (blocking clients)",
         ["bench_hls_load"] + (["--clients", "100", "--seconds", "10"] if q else [])),
        ("glass-to-glass + knob sweep (probe)",
         ["bench_latency", "--seconds", "8" if q else "15"] + ([] if q else ["--sweep"])),
        ("console cut / publisher go-live", ["bench_console", "--no-screenshots"]
         + (["--cuts", "10", "--golive", "1"] if q else [])),
    ]
    if long:
        runs.append(("long run: 30 min probe (latency drift)",
                     ["bench_latency", "--inputs", "4", "--seconds", "1800"]))
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--long", action="store_true")
    ap.add_argument("--only", help="comma-separated module names to run")
    a = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    out = [f"# Benchmark summary ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", ""]
    failed = 0
    for title, args in suite(a.quick, a.long):
        if a.only and args[0] not in a.only.split(","):
            continue
        print(f"== {title}: {' '.join(args)}", flush=True)
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", f"benchmarks.{args[0]}", *args[1:]],
                           cwd=ROOT, capture_output=True, text=True)
        took = time.monotonic() - t0
        table = [ln for ln in r.stdout.splitlines() if ln.startswith("|")]
        out += [f"## {title}", "", f"`python -m benchmarks.{' '.join(args)}` — "
                f"{'ok' if r.returncode == 0 else f'FAILED ({r.returncode})'}, {took:.0f} s", ""]
        out += table or ["```", *r.stdout.splitlines()[-15:], "```"]
        out.append("")
        if r.returncode != 0:
            failed += 1
            print(r.stderr[-2000:], file=sys.stderr)
        print("\n".join(table or r.stdout.splitlines()[-10:]), flush=True)
    (RESULTS / "summary.md").write_text("\n".join(out) + "\n")
    print(f"summary: {RESULTS / 'summary.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
