#!/usr/bin/env python3
"""Plays an RTSP stream over TCP with ffplay (SDL's dummy video and audio
drivers) and reports how far behind the newest frame it has it plays.

    ffplay_lag.py URL SECONDS

ffplay shows no newest received timestamp to compare its clock with, so the
RTSP connection goes through a tap in this script: ffplay connects to a port
of the script, which forwards both ways to the server and reads the media
interleaved in the server's bytes (RTSP over TCP, `$` frames). Then

    lag = (start + (newest - first) / rate) - clock

- `clock` is ffplay's master clock (the timestamp being presented, ffplay keeps
  the video on it), read from its `-stats` line (printed about every 30 ms,
  ended by a carriage return), taken with the tap's view at that moment;
- `newest` and `first` are the RTP timestamps of the newest and of the first
  video packet received (RTP timestamps unwrapped, `rate` the clock rate of
  the SDP's video `rtpmap`);
- `start` is the stream's first timestamp as ffplay counts it ("Duration:
  N/A, start: S" once the stream is probed): libavformat's RTSP demuxer counts
  timestamps from the first packet it received (the video's, or audio's that
  starts with it: audio never starts older than the video, replayed or not).

So a player anchored on a frame older than the live edge (a keyframe replay
with its original timestamps) shows that age as lag, as mpv's
`demuxer-cache-time - time-pos` does.

Every 250 ms, once all are known, it prints

    lag <elapsed seconds> <lag seconds>

and exits after SECONDS (with 1 if ffplay ended first or the tap failed).
ffplay is killed with its parent (PR_SET_PDEATHSIG), so that a test killing
this script leaves no player behind.
"""


import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit, urlunsplit

PR_SET_PDEATHSIG = 1
START = re.compile(r"Duration: .*?, start: (-?[0-9.]+)")
STATS = re.compile(r"^\s*(-?[0-9]+\.[0-9]+) ")
# Bounds of what the tap buffers while it looks for the end of a message.
MAX_PENDING = 1 << 20


def die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class VideoTap:
    """Reads the server's side of an RTSP-over-TCP connection: the SDP's video
    payload type and clock rate, then the RTP timestamps of the video packets
    interleaved in `$` frames."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending = b""
        self.payload_type = None
        self.rate = None
        self.first = None
        self.position = None  # the last packet's, unwrapped, from `first`
        self.newest = None  # the greatest position
        self.last_raw = None

    def feed(self, data: bytes) -> None:
        self.pending += data
        while self.pending:
            if self.pending[:1] == b"$":
                if len(self.pending) < 4:
                    break
                size = int.from_bytes(self.pending[2:4], "big")
                if len(self.pending) < 4 + size:
                    break
                self.on_frame(self.pending[4:4 + size])
                self.pending = self.pending[4 + size:]
                continue
            end = self.pending.find(b"\r\n\r\n")
            if end < 0:
                if len(self.pending) > MAX_PENDING:
                    raise ValueError("an RTSP message without an end")
                break
            header = self.pending[:end].decode(errors="replace")
            length = 0
            for line in header.split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.pending) < end + 4 + length:
                break
            self.on_body(self.pending[end + 4:end + 4 + length].decode(errors="replace"))
            self.pending = self.pending[end + 4 + length:]

    def on_body(self, body: str) -> None:
        media = None
        for line in body.splitlines():
            if line.startswith("m="):
                fields = line[2:].split()
                media = fields[0]
                if media == "video" and self.payload_type is None and len(fields) > 3:
                    self.payload_type = int(fields[3])
            elif line.startswith("a=rtpmap:") and media == "video" and self.rate is None:
                pt, _, encoding = line[len("a=rtpmap:"):].partition(" ")
                if self.payload_type is not None and int(pt) == self.payload_type:
                    self.rate = int(encoding.split("/")[1])

    def on_frame(self, packet: bytes) -> None:
        if len(packet) < 12 or packet[0] >> 6 != 2 or 200 <= packet[1] <= 204:
            return  # not RTP (RTCP)
        if self.payload_type is None or packet[1] & 0x7F != self.payload_type:
            return
        raw = int.from_bytes(packet[4:8], "big")
        with self.lock:
            if self.first is None:
                self.first, self.position, self.newest, self.last_raw = raw, 0, 0, raw
                return
            # Unwrapped: steps are signed (reordered packets, B-frames).
            self.position += (raw - self.last_raw + (1 << 31)) % (1 << 32) - (1 << 31)
            self.last_raw = raw
            self.newest = max(self.newest, self.position)

    def newest_secs(self):
        with self.lock:
            if self.newest is None or self.rate is None:
                return None
            return self.newest / self.rate


def pump(src: socket.socket, dst: socket.socket, tap, failed: list) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if tap is not None:
                tap.feed(data)
            dst.sendall(data)
    except (OSError, ValueError) as e:
        failed.append(str(e))
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main() -> int:
    url, seconds = sys.argv[1], float(sys.argv[2])
    parts = urlsplit(url)
    server = (parts.hostname, parts.port or 554)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    tapped = urlunsplit(parts._replace(netloc=f"127.0.0.1:{listener.getsockname()[1]}"))
    tap = VideoTap()
    failed = []

    def accept() -> None:
        try:
            client, _ = listener.accept()
            upstream = socket.create_connection(server, timeout=10)
            upstream.settimeout(None)
        except OSError as e:
            failed.append(f"tap: {e}")
            return
        threading.Thread(target=pump, args=(client, upstream, None, failed), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, tap, failed), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    begun = time.monotonic()
    player = subprocess.Popen(
        ["ffplay", "-hide_banner", "-loglevel", "verbose", "-stats", "-autoexit",
         "-rtsp_transport", "tcp", tapped],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=env, preexec_fn=die_with_parent,
    )
    state = {"start": None, "clock": None}
    lock = threading.Lock()

    def on_line(line: str) -> None:
        match = START.search(line)
        with lock:
            if match and state["start"] is None:
                state["start"] = float(match.group(1))
            match = STATS.match(line)
            if match and " fd=" in line:
                # The clock shown, and the newest frame the tap had then.
                state["clock"] = (float(match.group(1)), tap.newest_secs())

    def read() -> None:
        pending = b""
        fd = player.stderr.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            pending += chunk
            parts = re.split(rb"[\r\n]", pending)
            pending = parts.pop()
            for part in parts:
                if part.strip():
                    on_line(part.decode(errors="replace"))

    threading.Thread(target=read, daemon=True).start()
    status = 0
    while time.monotonic() - begun < seconds:
        time.sleep(0.25)
        if player.poll() is not None or failed:
            print(f"error ffplay exited with {player.returncode}; {failed}", flush=True)
            status = 1
            break
        with lock:
            start, clock = state["start"], state["clock"]
        if start is not None and clock is not None and clock[1] is not None:
            presented, newest = clock
            lag = start + newest - presented
            print(f"lag {time.monotonic() - begun:.3f} {lag:.3f}", flush=True)
    player.kill()
    player.wait()
    return status


if __name__ == "__main__":
    sys.exit(main())
