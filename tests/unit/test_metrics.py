from __future__ import annotations

import pytest

from media_server.metrics import STAGES, Exposition, Histogram, StageLatency


def test_histogram_buckets_and_quantiles() -> None:
    h = Histogram(buckets=(0.1, 0.5, 1.0))
    for v in (0.05, 0.1, 0.2, 0.7, 3.0):
        h.observe(v)
    assert h.cumulative() == [2, 3, 4]  # le semantics: 0.1 falls in the 0.1 bucket
    assert h.count == 5 and h.total == pytest.approx(4.05)
    assert h.quantile(0.5) == 0.2 and h.quantile(1.0) == 3.0
    assert Histogram().quantile(0.5) is None


def test_stages_add_up_to_the_total() -> None:
    marks = {"captured": 10.0, "arrived": 10.05, "tick": 10.07, "composited": 10.075,
             "encoded": 10.09, "published": 10.25}
    lat = StageLatency()
    lat.observe_frames("720p", [marks])
    rep = lat.report()["720p"]
    stages = sum(rep[name]["mean_ms"] for name, _, _ in STAGES)
    assert stages == pytest.approx(rep["total"]["mean_ms"], abs=0.2)
    assert rep["ingest"]["p50_ms"] == pytest.approx(50.0)
    assert rep["packaging"]["p50_ms"] == pytest.approx(160.0)


def test_total_starts_at_arrival_without_a_capture_time() -> None:
    lat = StageLatency()
    lat.observe_frames("360p", [{"arrived": 1.0, "tick": 1.01, "published": 1.3}])
    rep = lat.report()["360p"]
    assert "ingest" not in rep and rep["total"]["p50_ms"] == pytest.approx(300.0)


def test_exposition_format() -> None:
    e = Exposition()
    h = Histogram(buckets=(0.1, 1.0))
    h.observe(0.5)
    e.declare("x_seconds", "histogram", "help text")
    e.histogram("x_seconds", {"stage": 'a"b'}, h)
    text = e.text()
    assert "# TYPE x_seconds histogram" in text
    assert 'x_seconds_bucket{stage="a\\"b",le="0.1"} 0.0' in text
    assert 'x_seconds_bucket{stage="a\\"b",le="+Inf"} 1.0' in text
    assert 'x_seconds_count{stage="a\\"b"} 1.0' in text


def test_chunked_frames_are_available_before_their_part_completes() -> None:
    lat = StageLatency()
    lat.observe_frames("720p", [{"captured": 0.0, "arrived": 0.03, "tick": 0.05,
                                 "composited": 0.052, "encoded": 0.06, "chunked": 0.09,
                                 "published": 0.25}])
    rep = lat.report()["720p"]
    assert rep["packaging"]["p50_ms"] == pytest.approx(30.0)  # encoded -> its chunk out
    assert rep["total"]["p50_ms"] == pytest.approx(90.0)
    assert rep["part_complete"]["p50_ms"] == pytest.approx(250.0)
