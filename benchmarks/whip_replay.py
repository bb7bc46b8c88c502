"""Replay a pre-encoded clip (H.264 + Opus) over WHIP in real time, looping, no re-encoding.

    python -m benchmarks.whip_replay CLIP URL --token T --seconds 30

A load generator for ingest benchmarks: remuxing costs next to nothing, so the machine's CPU goes
to the server under test. Uses FFmpeg's whip muxer (PyAV) on its default settings."""

from __future__ import annotations

import argparse
import sys
import time

import av

from latency_lab.publisher import StopSignal


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("clip")
    p.add_argument("url")
    p.add_argument("--token", required=True)
    p.add_argument("--seconds", type=float, default=30)
    a = p.parse_args()
    stop = StopSignal()
    src = av.open(a.clip)
    vin = src.streams.video[0]
    ain = src.streams.audio[0] if src.streams.audio else None
    # (is_video, bytes, pts, dts, time_base, keyframe): re-created per send, since muxing
    # consumes a packet
    packets = [(pk.stream_index == vin.index, bytes(pk), pk.pts, pk.dts, pk.time_base,
                pk.is_keyframe) for pk in src.demux() if pk.dts is not None and pk.size]
    duration = max(float(p[2] * p[4]) for p in packets)
    period = duration + float(1 / vin.average_rate)
    out = av.open(a.url, mode="w", format="whip", options={"authorization": a.token})
    vout = out.add_stream_from_template(vin)
    aout = out.add_stream_from_template(ain) if ain is not None else None
    t0 = time.monotonic()
    loop = sent = 0
    while not stop and time.monotonic() - t0 < a.seconds:
        offset = loop * period
        for is_video, data, pts, dts, tb, key in packets:
            if stop or time.monotonic() - t0 >= a.seconds:
                break
            if not is_video and aout is None:
                continue
            delay = t0 + float(pts * tb) + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            shift = round(offset / tb)
            pk = av.Packet(data)
            pk.pts, pk.dts, pk.time_base = pts + shift, dts + shift, tb
            pk.is_keyframe = key
            pk.stream = vout if is_video else aout
            out.mux(pk)
            sent += is_video
        loop += 1
    out.close()
    print(f"sent {sent} video packets", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
