"""Publish with GStreamer's webrtcbin on its defaults (RSA DTLS certificate) over WHIP.

Runs under Debian's system Python with PyGObject (python3-gi), not the project's venv:

    /usr/bin/python3 tests/tools/gst_whip_publisher.py URL TOKEN [--codec vp8|h264] [--seconds N]
        [--host-address 127.0.0.1]

Needs Debian's gstreamer1.0-plugins-{base,good,bad,ugly}, gstreamer1.0-nice, python3-gi and the
gir1.2 typelibs for gstreamer, gst-plugins-base/bad and nice.

Prints one JSON line with the WHIP answer status, then keeps sending until the time is up or
SIGTERM. Exits non-zero with the reason on stderr when set-up fails.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import signal
import sys
import urllib.error
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

VIDEO = {
    "vp8": "vp8enc deadline=1 target-bitrate=800000 ! rtpvp8pay ! "
           "application/x-rtp,media=video,encoding-name=VP8,payload=96",
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 ! "
            "video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 ! "
            "application/x-rtp,media=video,encoding-name=H264,payload=102",
}


def add_local_address(webrtcbin: Gst.Element, host: str) -> bool:
    """nice_agent_add_local_address on webrtcbin's libnice agent: gather only on `host`.

    Through ctypes because PyGObject mis-refcounts webrtcbin's "ice-agent" property (GStreamer
    1.22: reading it from Python frees the agent under webrtcbin)."""
    gobject = ctypes.CDLL("libgobject-2.0.so.0")
    nice = ctypes.CDLL("libnice.so.10")
    gobject.g_object_get.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p,
                                     ctypes.c_void_p]
    gobject.g_object_unref.argtypes = [ctypes.c_void_p]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object,
                                                                 ctypes.c_char_p]
    element = get_pointer(webrtcbin.__gpointer__, None)
    ice, agent = ctypes.c_void_p(), ctypes.c_void_p()
    gobject.g_object_get(element, b"ice-agent", ctypes.byref(ice), None)
    gobject.g_object_get(ice, b"agent", ctypes.byref(agent), None)
    addr = ctypes.create_string_buffer(128)  # NiceAddress (a sockaddr union + padding)
    nice.nice_address_init(addr)
    ok = bool(nice.nice_address_set_from_string(addr, host.encode())) and bool(
        nice.nice_agent_add_local_address(agent, addr))
    gobject.g_object_unref(agent)
    gobject.g_object_unref(ice)
    return ok


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("token")
    ap.add_argument("--codec", default="vp8", choices=sorted(VIDEO))
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--host-address", action="append", default=[],
                    help="gather ICE candidates only on this address (repeatable), e.g. "
                         "127.0.0.1 for a test on loopback")
    a = ap.parse_args()
    Gst.init(None)
    pipe = Gst.parse_launch(
        "webrtcbin name=w bundle-policy=max-bundle "
        "videotestsrc is-live=true pattern=ball ! "
        "video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert ! "
        f"{VIDEO[a.codec]} ! w. "
        "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! "
        "rtpopuspay ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! w.")
    w = pipe.get_by_name("w")
    for host in a.host_address:
        if not add_local_address(w, host):
            print(f"bad --host-address {host}", file=sys.stderr)
            return 2
    loop = GLib.MainLoop()
    exit_code = [0]

    def fail(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)
        exit_code[0] = 1
        loop.quit()

    def send_offer() -> bool:
        offer = w.get_property("local-description")
        req = urllib.request.Request(a.url, data=offer.sdp.as_text().encode(), method="POST",
                                     headers={"Content-Type": "application/sdp",
                                              "Authorization": f"Bearer {a.token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, answer = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            fail(f"WHIP POST failed: {e.code} {e.read().decode()}")
            return False
        print(json.dumps({"status": status}), flush=True)
        _, sdp = GstSdp.SDPMessage.new_from_text(answer)
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        w.emit("set-remote-description", desc, Gst.Promise.new())
        return False

    def on_gathering(*_: object) -> None:
        if w.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(send_offer)

    def on_offer(promise: Gst.Promise) -> None:
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        w.emit("set-local-description", offer, Gst.Promise.new())

    def on_negotiation_needed(_: object) -> None:
        for i in range(2):
            t = w.emit("get-transceiver", i)
            if t is not None:
                t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        w.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer))

    w.connect("on-negotiation-needed", on_negotiation_needed)
    w.connect("notify::ice-gathering-state", on_gathering)
    bus = pipe.get_bus()
    bus.add_signal_watch()
    bus.connect("message::error", lambda _b, m: fail(f"pipeline error: {m.parse_error()}"))
    pipe.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int(a.seconds * 1000), loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, lambda: loop.quit() or False)
    loop.run()
    pipe.set_state(Gst.State.NULL)
    return exit_code[0]


if __name__ == "__main__":
    sys.exit(main())
