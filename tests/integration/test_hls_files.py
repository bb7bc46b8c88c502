"""Plain-file output (output_dir) for nginx/CDN: playlists, init, parts and segments on disk."""

from __future__ import annotations

import asyncio

from hls_packager.config import HlsConfig, RenditionConfig
from hls_packager.server import Packager
from hls_packager.store import DiskStore
from hls_packager.testing import make_program_frame
from hls_packager.validate import check_media_playlist


async def test_directory_output_and_disk_store(tmp_path):
    cfg = HlsConfig(renditions=(RenditionConfig("lo", 160, 90, 150_000, audio_bitrate=64_000),),
                    preset="ultrafast", queue_frames=64, output_dir=str(tmp_path / "www"))
    p = Packager("show", 30, cfg, DiskStore(tmp_path / "data" / "show"))
    p.start()
    for i in range(45):
        p.push(make_program_frame(i, 30, 320, 180))
    await p.aclose()
    await asyncio.sleep(0)  # let the loop run the queued publications
    www = tmp_path / "www" / "show"
    assert "lo/index.m3u8" in (www / "index.m3u8").read_text()
    assert (www / "lo" / "init0.mp4").read_bytes()[4:8] == b"ftyp"
    assert (www / "lo" / "seg0.m4s").exists() and (www / "lo" / "seg1.m4s").exists()
    final = (www / "lo" / "index.m3u8").read_text()
    assert final.endswith("#EXT-X-ENDLIST\n") and check_media_playlist(final) == []
    data = tmp_path / "data" / "show"
    assert (data / "meta.json").exists()
    lines = (data / "lo" / "segments.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert (data / "lo" / "seg1.m4s").read_bytes() == (www / "lo" / "seg1.m4s").read_bytes()
