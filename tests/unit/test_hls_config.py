"""HlsConfig validation names the bad field; from_dict rejects unknown keys."""

from __future__ import annotations

import pytest

from hls_packager.config import HlsConfig, HlsConfigError, RenditionConfig


def test_defaults():
    c = HlsConfig()
    assert (c.part_target_s, c.segment_target_s, c.window_segments, c.preset) == (
        0.2, 1.0, 7, "veryfast")
    assert [(r.name, r.width, r.height, r.video_bitrate) for r in c.renditions] == [
        ("720p", 1280, 720, 2_500_000), ("360p", 640, 360, 600_000)]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"part_target_s": 0.01}, "part_target_s"),
        ({"segment_target_s": 0.1, "part_target_s": 0.2}, "segment_target_s"),
        ({"window_segments": 1}, "window_segments"),
        ({"preset": "warp"}, "preset"),
        ({"renditions": ()}, "renditions"),
        ({"renditions": (RenditionConfig("a"), RenditionConfig("a"))}, "renditions"),
        ({"queue_frames": 0}, "queue_frames"),
    ],
)
def test_bad_values_name_the_field(kwargs, field):
    with pytest.raises(HlsConfigError, match=f"^{field}:"):
        HlsConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"name": "a b"}, "name"), ({"width": 641}, "width"), ({"encoder": "x265"}, "encoder"),
     ({"video_bitrate": 10}, "video_bitrate"), ({"max_bitrate": 1}, "max_bitrate")],
)
def test_bad_rendition_values(kwargs, field):
    with pytest.raises(HlsConfigError, match=f"^{field}:"):
        RenditionConfig(**kwargs)


def test_from_dict():
    c = HlsConfig.from_dict({"part_target_s": 0.25, "renditions": [
        {"name": "hd", "width": 1280, "height": 720, "video_bitrate": 2_000_000}]})
    assert c.part_target_s == 0.25 and c.renditions[0].name == "hd"
    with pytest.raises(HlsConfigError, match=r"^hls\.parts: unknown key"):
        HlsConfig.from_dict({"parts": 1})
    with pytest.raises(HlsConfigError, match=r"^hls\.renditions\[0\]\.fps: unknown key"):
        HlsConfig.from_dict({"renditions": [{"fps": 30}]})
    with pytest.raises(HlsConfigError, match=r"^hls\.renditions\[0\]\.width:"):
        HlsConfig.from_dict({"renditions": [{"width": 3}]})
