#!/usr/bin/env python3
"""Plays an RTSP stream with GStreamer's rtspsrc and reports its lag.

    gst_lag.py URL PROTOCOLS SECONDS

The video (H.264 or H.265) is depayloaded, decoded and rendered by a fakesink
that syncs to the clock, as a player would; every other stream goes to a plain
fakesink (every pad rtspsrc creates is linked, or the pipeline races
not-linked). Every 250 ms it prints

    lag <elapsed seconds> <lag seconds>

where the lag is how far the video sink's position (the frame rendered) is
behind the newest frame that has come out of rtspsrc (its jitterbuffer),
both on the stream's clock: what a viewer sees behind what the player
already has. It
prints "first-frame <elapsed seconds>" when the first decoded frame is
rendered, and exits after SECONDS (or with 1 on an error message).
"""

import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

DEPAY = {"H264": "rtph264depay ! h264parse ! avdec_h264", "H265": "rtph265depay ! h265parse ! avdec_h265"}


def main() -> int:
    url, protocols, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    Gst.init(None)
    pipe = Gst.Pipeline.new("lag")
    src = Gst.ElementFactory.make("rtspsrc")
    src.set_property("location", url)
    src.set_property("protocols", protocols)
    pipe.add(src)
    start = time.monotonic()
    newest = [None]
    rendered = [False]
    state = {"video": None}

    def on_newest(_pad, info):
        buf = info.get_buffer()
        if buf is not None and buf.pts != Gst.CLOCK_TIME_NONE:
            newest[0] = buf.pts if newest[0] is None else max(newest[0], buf.pts)
        return Gst.PadProbeReturn.OK

    def on_handoff(*_args):
        if not rendered[0]:
            rendered[0] = True
            print(f"first-frame {time.monotonic() - start:.3f}", flush=True)

    def on_pad(_src, pad):
        caps = pad.get_current_caps().get_structure(0)
        encoding = (caps.get_string("encoding-name") or "").upper()
        if caps.get_string("media") == "video" and encoding in DEPAY and state["video"] is None:
            chain = Gst.parse_bin_from_description(
                DEPAY[encoding] + " ! fakesink name=sink sync=true signal-handoffs=true", True
            )
            state["video"] = chain.get_by_name("sink")
            state["video"].connect("handoff", on_handoff)
            pad.add_probe(Gst.PadProbeType.BUFFER, on_newest)
        else:
            chain = Gst.ElementFactory.make("fakesink")
            chain.set_property("async", False)
        pipe.add(chain)
        chain.sync_state_with_parent()
        pad.link(chain.get_static_pad("sink"))

    src.connect("pad-added", on_pad)
    loop = GLib.MainLoop()
    status = [0]

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            print(f"error {err.message} ({debug})", flush=True)
            status[0] = 1
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            print("error end of stream", flush=True)
            status[0] = 1
            loop.quit()

    def tick():
        elapsed = time.monotonic() - start
        sink = state["video"]
        ok, position = sink.query_position(Gst.Format.TIME) if sink else (False, 0)
        if rendered[0] and ok and position > 0 and newest[0] is not None:
            print(f"lag {elapsed:.3f} {(newest[0] - position) / 1e9:.3f}", flush=True)
        if elapsed > seconds:
            loop.quit()
            return False
        return True

    bus = pipe.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    GLib.timeout_add(250, tick)
    pipe.set_state(Gst.State.PLAYING)
    loop.run()
    pipe.set_state(Gst.State.NULL)
    return status[0]


if __name__ == "__main__":
    sys.exit(main())
