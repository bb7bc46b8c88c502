"""latency_lab.report: figures from samples, table, JSON-able dict, PNG."""

from __future__ import annotations

import json

from PIL import Image

from latency_lab import report
from latency_lab.watcher import FrameSample

T0 = 1_800_000_000_000


def frame(ms: int | None, decoded_after_ms: float, pts: float, joined: bool = False,
          recv_before_ms: float = 2.0) -> FrameSample:
    base = (ms if ms is not None else T0) + decoded_after_ms
    return FrameSample(ms, (base - recv_before_ms) / 1000, base / 1000, pts, (0, 0), joined)


def make_run() -> report.Run:
    samples = [frame(None, 0, -0.1, joined=True), frame(T0 - 5000, 900, -0.05, joined=True)]
    samples += [frame(None, 0, 0.0)]  # not on program yet
    ms = T0
    for n in range(1, 300):
        if n in (100, 101):  # two frames lost
            ms += 33
            continue
        if n == 200:  # a frozen frame: the same stamp again
            samples.append(frame(ms, 300, n / 30))
            continue
        ms += 33
        samples.append(frame(ms, 250 + (n % 10), n / 30))
    for _ in range(5):  # publisher stopped: the output freezes on the last frame
        samples.append(frame(ms, 400, 11.0))
    return report.Run(samples, onsets=[], fps=30, posted_wall=(T0 - 1500) / 1000,
                      connected_wall=(T0 - 1000) / 1000, meta={"production": "quake"})


def test_percentile_nearest_rank():
    assert report.percentile([], 0.5) is None
    assert report.percentile([3, 1, 2], 0.5) == 2
    assert report.percentile(list(range(1, 101)), 0.95) == 95


def test_summary_figures():
    s = report.summarize(make_run())
    g = s["glass_to_glass_ms"]
    assert 250 <= g["p50"] <= 259 and g["max"] == 259 and g["count"] == 296
    assert s["part_arrival_ms"]["p50"] == g["p50"] - 2
    assert s["decode_ms"]["p50"] == 2
    assert s["frames_lost"] == 2 and s["frames_frozen"] == 1
    assert s["frames_unreadable"] == 0
    assert s["time_to_first_frame_ms"] == 1500 + 33 + 251
    assert s["whip_connect_ms"] == 500
    json.dumps(s)  # JSON-able


def test_av_offset_from_onsets():
    # video: capture ms = T0 + 1000*pts + 0 (output media time == capture clock - T0);
    # audio onsets 40 ms after the whole seconds → audio 40 ms late
    samples = [frame(T0 + n * 33, 200, n * 0.033) for n in range(200)]
    onsets = [1.040, 2.040, 3.040, 4.040]
    offs = report.av_offsets(samples, onsets)
    assert [round(o) for o in offs] == [40, 40, 40, 40]


def test_table_and_server_stages():
    s = report.summarize(make_run())
    text = report.render_table(s)
    assert "glass-to-glass" in text and "2 lost, 1 frozen" in text
    assert "server stages: not available" in text
    s["server_latency"] = {"stages": {"ingest": {"p50_ms": 12, "p95_ms": 20},
                                      "encode": {"p50_ms": 8, "p95_ms": 11}}}
    text = report.render_table(s)
    assert "stages.ingest" in text and "stages.encode" in text
    assert report.server_stage_rows([{"stage": "http", "p50": 1, "p95": 2}]) == [
        ("http", 1, 2)]


def test_plot_png(tmp_path):
    run = make_run()
    path = tmp_path / "p.png"
    report.plot_png(run, report.summarize(run), str(path))
    img = Image.open(path)
    assert img.size == (report.W, report.H)
    empty = report.Run([], [], 30)
    report.plot_png(empty, report.summarize(empty), str(tmp_path / "e.png"))
    assert Image.open(tmp_path / "e.png").size == (report.W, report.H)


def test_stage_check_compares_server_stages_with_the_measurement() -> None:
    from latency_lab.report import stage_check

    server = {"renditions": {"360p": {"total": {"mean_ms": 100.0}}}}
    chk = stage_check(server, "360p", [110.0, 130.0], [4.0, 6.0])
    assert chk == {"server_stages_plus_decode_ms": 105.0, "measured_ms": 120.0,
                   "difference_pct": -12.5}
    assert stage_check(None, "360p", [1.0], [1.0]) is None
    assert stage_check(server, "720p", [1.0], [1.0]) is None


def _stage(p50, p95, count=450, mx=None, mean=None):
    return {"count": count, "p50_ms": p50, "p95_ms": p95, "max_ms": mx if mx is not None else p95,
            "mean_ms": mean if mean is not None else p50}


def latency_document() -> dict:
    """Shaped like GET /api/productions/{id}/latency (media_server.observe.latency_dict)."""
    rung = {
        "composite": _stage(0.4, 0.9),  # 2.25: over
        "encode": _stage(5.1, 9.6),
        "ingest": _stage(35.4, 40.5),
        "packaging": _stage(73.7, 168.3),  # 2.28: over
        "switcher_wait": _stage(34.4, 36.1),
        "total": _stage(147.4, 320.0),  # a sum: ratio given, never checked
        "part_complete": _stage(200.0, 260.0),
    }
    return {
        "production": "lab",
        "marks": ["captured", "arrived", "tick", "composited", "encoded", "published",
                  "delivered"],
        "renditions": {
            "360p": {**rung, "delivery": _stage(0.0, 2.6, count=84)},  # p50 0: no ratio
            "720p": {**rung, "encode": _stage(6.0, 12.0),  # exactly 2.0: within
                     "delivery": {"count": 0, "p50_ms": None, "p95_ms": None,
                                  "max_ms": None, "mean_ms": None}},  # no data
        },
        "sources": {"probe": {"capture_to_arrival_ms": 37.5, "state": "live"}},
        "switcher": {"ticks": 507, "late_ticks": 0},
    }


def test_stage_spread_flags_stages_over_twice_their_p50() -> None:
    sp = report.stage_spread(latency_document())
    assert sp["limit"] == 2.0
    assert sp["over"] == ["360p/composite", "360p/packaging", "720p/composite",
                          "720p/packaging"]
    assert sp["undefined"] == ["360p/delivery", "720p/delivery"]
    assert sp["met"] is False
    rows = {(r["rendition"], r["stage"]): r for r in sp["rows"]}
    assert rows[("360p", "packaging")]["ratio"] == 2.28 and rows[("360p", "packaging")]["over"]
    assert rows[("360p", "ingest")]["ratio"] == 1.14 and rows[("360p", "ingest")]["over"] is False
    assert rows[("720p", "encode")]["ratio"] == 2.0 and rows[("720p", "encode")]["over"] is False
    # p50 = 0 or missing: no ratio, neither over nor within
    for key in (("360p", "delivery"), ("720p", "delivery")):
        assert rows[key]["ratio"] is None and rows[key]["over"] is None
    # sums are reported but not checked, even over the limit
    total = rows[("360p", "total")]
    assert total["ratio"] == 2.17 and total["over"] is True and total["checked"] is False
    assert "360p/total" not in sp["over"]
    # pipeline order, then the sums
    assert [r["stage"] for r in sp["rows"] if r["rendition"] == "360p"] == [
        "ingest", "switcher_wait", "composite", "encode", "packaging", "delivery", "total",
        "part_complete"]
    json.dumps(sp)


def test_stage_spread_met_limit_and_bad_documents() -> None:
    doc = {"renditions": {"360p": {"ingest": _stage(30.0, 40.0), "encode": _stage(5.0, 9.0)}}}
    sp = report.stage_spread(doc)
    assert sp["met"] is True and sp["over"] == [] and sp["undefined"] == []
    assert report.stage_spread(doc, limit=1.5)["over"] == ["360p/encode"]
    assert report.stage_spread(None) is None
    assert report.stage_spread({"production": "x"}) is None
    assert report.stage_spread({"renditions": {}}) == {
        "limit": 2.0, "rows": [], "over": [], "undefined": [], "met": False}
    # a stage without p50/p95 keys at all
    sp = report.stage_spread({"renditions": {"360p": {"ingest": {"count": 0}}}})
    assert sp["undefined"] == ["360p/ingest"] and sp["met"] is False


def test_stage_spread_in_summary_and_table() -> None:
    run = make_run()
    run.server_latency = latency_document()
    run.meta["rendition"] = "360p"
    s = report.summarize(run)
    assert s["stage_spread"]["over"][:2] == ["360p/composite", "360p/packaging"]
    text = report.render_table(s)
    assert "stage spread (p95 / p50)" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("360p/packaging"))
    assert "2.28" in line and "OVER" in line
    assert "720p/packaging" not in text.split("stage spread")[1].split("stages over")[0]
    assert next(ln for ln in text.splitlines()
                if ln.startswith("360p/delivery")).endswith("no p50")
    assert "stages over 2x (all renditions): 360p/composite, 360p/packaging" in text
    assert report.summarize(make_run())["stage_spread"] is None
