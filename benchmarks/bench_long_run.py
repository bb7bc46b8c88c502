"""Long run: 4 WHIP inputs through a 2x2 layout to the LL-HLS ladder for 30 minutes; latency
and memory must stay flat.

    .venv/bin/python -m benchmarks.bench_long_run [--minutes 30] [--chunk 300]

One server process and one production run for the whole time, fed by three publishers replaying
a 720p30 clip and by `scenecloud probe` in the top-left quadrant. The probe runs back to back
in chunks (each a fresh WHIP session of the probe; the production, the other inputs and the
output never stop), giving glass-to-glass p50/p95 per chunk; server RSS and CPU are sampled
every 10 s. Drift = last chunk's p50 - first chunk's p50. Writes results/long_run.json.
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
from pathlib import Path
from typing import Any

from benchmarks.bench_whip_ingest import CACHE, make_clip
from benchmarks.common import ROOT, http, proc_cpu, proc_rss_mb, server_process, stop_all

RESULTS = ROOT / "benchmarks" / "results"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--chunk", type=float, default=300, help="seconds per probe run")
    a = ap.parse_args()
    admin = secrets.token_urlsafe(24)
    clip = make_clip(CACHE / "720p30_high.mkv")
    total = a.minutes * 60
    samples: list[dict[str, float]] = []
    chunks: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, server_process(
            Path(tmp) / "data", admin,
            env={"SCENECLOUD_INGEST_ICE_HOST_ADDRESSES": "127.0.0.1"}) as (base, spid):
        prod = http("POST", f"{base}/api/productions", admin, {"id": "long"})
        d, p = prod["director_token"], prod["publish_token"]
        pubs = [subprocess.Popen(
            [sys.executable, "-m", "benchmarks.whip_replay", str(clip),
             f"{base}/whip/long/cam{i}", "--token", p, "--seconds", str(total + 120)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in (1, 2, 3)]
        stop = threading.Event()
        t_start = time.monotonic()

        def sample() -> None:
            last_cpu, last_t = proc_cpu(spid), time.monotonic()
            while not stop.wait(10):
                cpu, now = proc_cpu(spid), time.monotonic()
                samples.append({"t_s": round(now - t_start, 1),
                                "rss_mb": round(proc_rss_mb(spid), 1),
                                "cpu_cores": round((cpu - last_cpu) / (now - last_t), 3)})
                last_cpu, last_t = cpu, now

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            http("POST", f"{base}/api/productions/long/switcher", d,
                 {"op": "layout", "name": "grid", "kind": "grid2x2",
                  "sources": ["probe", "cam1", "cam2", "cam3"]})
            http("POST", f"{base}/api/productions/long/switcher", d,
                 {"op": "program", "layout": "grid"})
            while time.monotonic() - t_start < total - 30:
                secs = min(a.chunk, total - (time.monotonic() - t_start))
                r = subprocess.run(
                    [str(ROOT / ".venv/bin/scenecloud"), "probe", base, "--production", "long",
                     "--seconds", str(int(secs)), "--region", "0,0,0.5,0.5", "--json"],
                    env={**os.environ, "SCENECLOUD_PUBLISH_TOKEN": p}, cwd=ROOT,
                    capture_output=True, timeout=secs + 120)
                at = round(time.monotonic() - t_start)
                if r.returncode != 0:
                    chunks.append({"t_s": at, "error": r.stderr.decode()[-300:]})
                    continue
                rep = json.loads(r.stdout)
                chunks.append({"t_s": at, "g2g_ms": rep["glass_to_glass_ms"],
                               "av_offset_ms": rep.get("av_offset_ms"),
                               "lost": rep.get("frames_lost"), "frozen": rep.get("frames_frozen"),
                               "stamped": rep.get("frames_stamped")})
                print(json.dumps(chunks[-1]), flush=True)
            sw = http("GET", f"{base}/api/productions/long/latency", d)["switcher"]
        finally:
            stop.set()
            stop_all(pubs)
    ok = [c for c in chunks if "g2g_ms" in c]
    result = {
        "benchmark": "long_run", "machine": f"{os.cpu_count()} cores", "minutes": a.minutes,
        "chunks": chunks, "samples": samples, "switcher": sw,
        "g2g_p50_drift_ms": round(ok[-1]["g2g_ms"]["p50"] - ok[0]["g2g_ms"]["p50"], 1)
        if len(ok) > 1 else None,
        "rss_mb_first_last": [samples[0]["rss_mb"], samples[-1]["rss_mb"]] if samples else None,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "long_run.json").write_text(json.dumps(result, indent=2))
    print("| chunk end (s) | g2g p50 ms | p95 | lost/frozen | A/V ms |")
    print("|---|---|---|---|---|")
    for c in ok:
        av = (c["av_offset_ms"] or {}).get("p50")
        print(f"| {c['t_s']} | {c['g2g_ms']['p50']:.0f} | {c['g2g_ms']['p95']:.0f} | "
              f"{c['lost']}/{c['frozen']} | {av if av is None else round(av)} |")
    print(f"drift (last - first p50): {result['g2g_p50_drift_ms']} ms; RSS MB first/last: "
          f"{result['rss_mb_first_last']}; switcher: {sw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
