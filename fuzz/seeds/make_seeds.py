#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/seeds/<target>/.

Sources: the real camera answers of tests/data/cameras/, the SDPs of
tests/data/sdp/, the captured exchanges of tests/data/captures/ (the same
files as the shared captures, kept in the repository so the seeds are
self-contained), and small hand-made RTP/RTCP packets. Deterministic: run it
again after changing it, and commit what changed.

    python3 fuzz/seeds/make_seeds.py
"""
import base64
import hashlib
import pathlib
import re
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
SEEDS = pathlib.Path(__file__).resolve().parent

TARGETS = [
    "parse_frame", "transport_header", "auth_challenge", "url", "tunnel_base64",
    "sdp", "rtp_rtcp", "continuity", "interleaved", "handler", "proxy_protocol",
    "mpegts",
]


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def exchanges(path):
    """(kind, message) pairs of a capture file, kind 'request' or 'response'."""
    text = path.read_text()
    out = []
    for block in re.split(r"^(>>> request|<<< response)\n", text, flags=re.M)[1:]:
        out.append(block)
    pairs = []
    for marker, body in zip(out[0::2], out[1::2]):
        body = body.split("\n--- ")[0]
        kind = "request" if marker.startswith(">>>") else "response"
        pairs.append((kind, body.strip("\n") + "\n\n"))
    return pairs


def message_bytes(message):
    """A captured message as wire bytes: CRLF head, body as Content-Length says."""
    message = message.replace("\r\n", "\n")
    head, _, body = message.partition("\n\n")
    wire = crlf(head) + "\r\n\r\n"
    m = re.search(r"^Content-Length:\s*(\d+)", head, flags=re.M | re.I)
    if m:
        n = int(m.group(1))
        body = crlf(body)
        body = body[:n].ljust(n, "\n")
        wire += body
    return wire.encode()


def sdp_of(raw):
    """The SDP body of a whole RTSP response (or the text itself if bare SDP)."""
    if raw.startswith(b"v=") or raw.startswith(b"\xef\xbb\xbfv="):
        return raw
    sep = raw.find(b"\r\n\r\n")
    return raw[sep + 4:] if sep >= 0 else b""


def rtp(seq, ts, ssrc, payload=b"", pt=96, marker=False, csrcs=(), ext=None, pad=0):
    b0 = 0x80 | len(csrcs) | (0x10 if ext is not None else 0) | (0x20 if pad else 0)
    out = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    for c in csrcs:
        out += struct.pack("!I", c)
    if ext is not None:
        out += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    out += payload
    if pad:
        out += b"\0" * (pad - 1) + bytes([pad])
    return out


def rtcp(pt, count, body, pad=0):
    total = 4 + len(body) + pad
    assert total % 4 == 0
    b0 = 0x80 | count | (0x20 if pad else 0)
    padding = (b"\0" * (pad - 1) + bytes([pad])) if pad else b""
    return struct.pack("!BBH", b0, pt, total // 4 - 1) + body + padding


def sdes(ssrc, cname):
    item = bytes([1, len(cname)]) + cname
    chunk = struct.pack("!I", ssrc) + item
    chunk += b"\0" * (4 - len(chunk) % 4)
    return rtcp(202, 1, chunk)


def sender_report(ssrc, blocks=()):
    body = struct.pack("!IQIII", ssrc, 0xECB45E5780000000, 0xF07A9975, 300, 100000)
    for b in blocks:
        body += b
    return rtcp(200, len(blocks), body)


def report_block(ssrc):
    return struct.pack("!IIIIII", ssrc, 0x19000005, 0x0001558E, 0x20, 0x5E578000, 0x4000)


def main():
    for t in TARGETS:
        shutil.rmtree(SEEDS / t, ignore_errors=True)

    cameras = sorted((DATA / "cameras").glob("*.txt"))
    captures = sorted((DATA / "captures").glob("*.txt"))
    sdps = sorted((DATA / "sdp").glob("*.sdp"))

    # parse_frame and interleaved: every camera answer, every captured message.
    for f in cameras:
        write("parse_frame", "camera-" + f.stem, f.read_bytes())
    for f in captures:
        for i, (_, msg) in enumerate(exchanges(f)):
            write("parse_frame", f"{f.stem}-{i:02}", message_bytes(msg))

    # Header values (one per file) for the header, auth and URL targets.
    header_files = {"transport_header": r"Transport|Session|RTP-Info|Range|Public",
                    "auth_challenge": r"WWW-Authenticate|Authorization",
                    "url": r"Content-Base|Content-Location|Location"}
    values = {t: set() for t in header_files}
    messages = [f.read_bytes() for f in cameras]
    messages += [message_bytes(m) for f in captures for _, m in exchanges(f)]
    for raw in messages:
        head = raw.split(b"\r\n\r\n")[0].decode("utf-8", "replace")
        first, *lines = head.split("\r\n")
        parts = first.split(" ")
        if len(parts) == 3 and parts[2].startswith("RTSP/"):
            values["url"].add(parts[1])
        for line in lines:
            name, _, value = line.partition(":")
            for t, names in header_files.items():
                if re.fullmatch(names, name.strip(), flags=re.I):
                    values[t].add(value.strip())
            if name.strip().lower() == "rtp-info":
                values["url"].update(re.findall(r"url=([^;,]+)", value))
    for t, vs in values.items():
        for v in sorted(vs):
            write(t, hashlib.sha1(v.encode()).hexdigest()[:12], v)
    for i, (_, m) in enumerate(exchanges(captures[0])[:4]):
        write("tunnel_base64", f"request-{i}", base64.b64encode(message_bytes(m)))
    write("tunnel_base64", "split-padding", b"\x03T1BUSU9OUyAqIFJUU1AvMS4wDQo=\r\nQ1NlcTogMQ0KDQo=")

    # interleaved: first byte = limits/chunking control, then a stream of
    # responses with interleaved media between them, as a back end sends.
    media = rtp(9348, 3644767512, 0xC6841965, b"\x7c\x85" + b"\x88" * 40, marker=True)
    audio = bytes.fromhex("80e1558ef07a9975dc74cd2d") + b"\x21" * 20
    rtcp_pkt = sender_report(0xDC74CD2D) + sdes(0xDC74CD2D, b"user2166734468@host-5ebcdfb5")

    def frame(ch, payload):
        return b"$" + bytes([ch]) + struct.pack("!H", len(payload)) + payload

    for f in captures:
        msgs = [message_bytes(m) for k, m in exchanges(f) if k == "response"]
        stream = b"".join(msgs[:3]) + frame(0, media) + frame(2, audio) + frame(3, rtcp_pkt)
        stream += b"".join(msgs[3:]) + frame(1, rtcp_pkt) + b"$\x00\x01"
        for control in (0, 1, 2, 0x83):
            write("interleaved", f"{f.stem}-{control:02x}", bytes([control]) + stream)
    for f in cameras[:: max(1, len(cameras) // 8)]:
        write("interleaved", "camera-" + f.stem, b"\x00" + f.read_bytes() + frame(0, media))

    # sdp: bare SDPs and the bodies of DESCRIBE answers.
    for f in sdps:
        write("sdp", f.stem, f.read_bytes())
    for f in cameras:
        body = sdp_of(f.read_bytes())
        if b"m=" in body:
            write("sdp", "camera-" + f.stem, body)
    for f in captures:
        for k, m in exchanges(f):
            wire = message_bytes(m)
            body = sdp_of(wire)
            if k == "response" and b"m=" in body:
                write("sdp", f.stem, body)

    # rtp_rtcp: hand-made packets.
    nal_idr = b"\x65\x88\x84\x00\x33\xff"
    nal_sps = b"\x67\x42\xc0\x1e\xda\x02\x80\xf6\xc0"
    nal_pps = b"\x68\xce\x3c\x80"
    h264 = {
        "single-idr": nal_idr,
        "single-slice": b"\x41\x9a\x02\x04",
        "stap-a-sps-pps": b"\x18" + struct.pack("!H", len(nal_sps)) + nal_sps
        + struct.pack("!H", len(nal_pps)) + nal_pps,
        "fu-a-start-idr": b"\x7c\x85" + b"\x88" * 16,
        "fu-a-end-idr": b"\x7c\x45" + b"\x88" * 16,
    }
    h265 = {
        "h265-idr": b"\x26\x01\xaf\x06",
        "h265-vps": b"\x40\x01\x0c\x01\xff\xff",
        "h265-ap": b"\x60\x01" + struct.pack("!H", 4) + b"\x40\x01\x0c\x01"
        + struct.pack("!H", 3) + b"\x42\x01\x01",
        "h265-fu-start-cra": b"\x62\x01\x95" + b"\xaa" * 8,
    }
    for name, payload in {**h264, **h265}.items():
        write("rtp_rtcp", "rtp-" + name, rtp(100, 90000, 0x01020304, payload, marker=True))
    write("rtp_rtcp", "rtp-gst-audio", bytes.fromhex("80e1558ef07a9975dc74cd2d") + b"\x21" * 32)
    write("rtp_rtcp", "rtp-csrc-ext-pad",
          rtp(7, 8, 9, b"\x41\x9a", csrcs=(1, 2), ext=b"\x10\xaa\x00\x00", pad=4))
    write("rtp_rtcp", "annexb-sps-pps-idr",
          b"\x00\x00\x00\x01" + nal_sps + b"\x00\x00\x01" + nal_pps + b"\x00\x00\x01" + nal_idr + b"\x00")
    write("rtp_rtcp", "rtcp-sr-sdes", rtcp_pkt)
    write("rtp_rtcp", "rtcp-sr-block-sdes",
          sender_report(0xDC74CD2D, [report_block(0x11223344)]) + sdes(0xDC74CD2D, b"cam"))
    rr = rtcp(201, 2, struct.pack("!I", 0x5EED) + report_block(1) + report_block(2))
    write("rtp_rtcp", "rtcp-rr-sdes", rr + sdes(0x5EED, b"rtsp-proxy"))
    write("rtp_rtcp", "rtcp-rr-bye", rtcp(201, 0, struct.pack("!I", 7)) + rtcp(203, 1, struct.pack("!I", 7)))
    write("rtp_rtcp", "rtcp-rr-app-padded",
          rtcp(201, 0, struct.pack("!I", 7)) + rtcp(204, 0, struct.pack("!I", 7) + b"name", pad=4))

    # continuity: header (clock rate, first seq, first ts), then ops:
    # 0 raw(len, bytes), 1..3 synthetic(sel, seq step, ts step), 4 time(step),
    # 5 source_reset, 6 hold / 0x86 release, 7 expect_start(seq).
    head = bytes([0]) + struct.pack("!HI", 0xFFF0, 0xFFFFFF00)

    def synth(sel, dseq=1, dts=10):
        return bytes([1, sel, dseq & 0xFF, dts])

    def step(ms_root):
        return bytes([4, ms_root])

    steady = b"".join(synth(0) + step(6) for _ in range(8))
    write("continuity", "steady", head + steady)
    write("continuity", "reorder-loss", head + synth(0) + synth(0, 2) + synth(0, 0xFF) + synth(0, 3) + synth(0, 0))
    write("continuity", "ssrc-change", head + steady + synth(1) + synth(1) + synth(0, 0xFE) + synth(1))
    write("continuity", "jump", head + steady + bytes([1, 0, 0x80, 0x90, 0x00, 10]) + synth(0) + synth(0))
    write("continuity", "reset", head + steady + bytes([5]) + step(40) + synth(2) + synth(2))
    write("continuity", "hold-release", head + steady + bytes([6]) + synth(0) + step(100) + bytes([0x86]) + synth(0))
    write("continuity", "expect-start", head + bytes([7]) + struct.pack("!H", 1010) + synth(0) + synth(0, 9) + synth(0))
    # The previous mapping's late packet after the current one ran far on.
    far = b"".join(bytes([1, 1, 0x80]) + struct.pack("!H", (5000 + 2999 * i) & 0xFFFF) + bytes([10])
                   for i in range(13))
    write("continuity", "late-after-long-run",
          bytes([0]) + struct.pack("!HI", 0, 0) + synth(0) + synth(0) + synth(0) + far + synth(0, 0xFF))
    write("continuity", "raw", head + bytes([0, 16]) + rtp(5, 6, 7, b"\x65\x88\x84\x00") + synth(3))

    # handler: first byte = flags (1 auth, 2 tunnelled, 4 TLS), then the
    # requests of the captures, aimed at stream "cam", with "@S@" for the
    # session id the proxy gives.
    for f in captures:
        reqs = []
        for k, m in exchanges(f):
            if k != "request":
                continue
            wire = message_bytes(m).decode()
            wire = re.sub(r"rtsp://[^/ ]+/[^/ ]+", "rtsp://127.0.0.1:8554/cam", wire)
            wire = re.sub(r"stream=(\d)", lambda mm: f"track{int(mm.group(1)) + 1}", wire)
            wire = re.sub(r"^Session: [^\r\n]*", "Session: @S@", wire, flags=re.M)
            reqs.append(wire)
        if reqs:
            write("handler", f.stem, "\x00" + "".join(reqs))
            auth = "".join(r.replace("\r\n\r\n", "\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n", 1)
                           for r in reqs)
            write("handler", f.stem + "-auth", "\x01" + auth)
    cam = "rtsp://127.0.0.1:8554/cam"
    seq = [
        f"OPTIONS {cam} RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        f"DESCRIBE {cam} RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n",
        f"SETUP {cam}/track1 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
        f"SETUP {cam}/track2 RTSP/1.0\r\nCSeq: 4\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\nSession: @S@\r\n\r\n",
        f"PLAY {cam}/ RTSP/1.0\r\nCSeq: 5\r\nSession: @S@\r\nRange: npt=0-\r\n\r\n",
        f"GET_PARAMETER {cam}/ RTSP/1.0\r\nCSeq: 6\r\nSession: @S@\r\n\r\n",
        f"PAUSE {cam}/ RTSP/1.0\r\nCSeq: 7\r\nSession: @S@\r\n\r\n",
        f"PLAY {cam}/ RTSP/1.0\r\nCSeq: 8\r\nSession: @S@\r\n\r\n",
        f"TEARDOWN {cam}/ RTSP/1.0\r\nCSeq: 9\r\nSession: @S@\r\n\r\n",
    ]
    write("handler", "tcp-udp-play-pause-teardown", "\x00" + "".join(seq))
    write("handler", "tunnelled", "\x02" + "".join(seq))
    odd = [
        "DESCRIBE rtsp://127.0.0.1:8554/idle RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        "SETUP rtsp://127.0.0.1:8554/other RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port=0-1,RTP/AVP/TCP\r\n\r\n",
        "PLAY rtsp://127.0.0.1:8554/other RTSP/1.0\r\nCSeq: 3\r\nSession: @S@;timeout=60\r\nRequire: x\r\n\r\n",
        "SET_PARAMETER * RTSP/1.0\r\nCSeq: 4\r\nContent-Length: 5\r\n\r\nhello",
        "OPTIONS * RTSP/2.0\r\nCSeq: 5\r\n\r\n",
        "ANNOUNCE rtsp://127.0.0.1:8554/cam RTSP/1.0\r\nCSeq: x\r\n\r\n",
        "FOO rtsp://127.0.0.1:8554/cam RTSP/1.0\r\nCSeq: 7\r\n\r\n",
        "GARBAGE\r\nCSeq: 8\r\n\r\n",
    ]
    write("handler", "odd-requests", "\x00" + "".join(odd))

    # proxy_protocol: what HAProxy 2.6 sends (send-proxy, send-proxy-v2, with
    # the client's first bytes after it), the protocol's examples, LOCAL,
    # IPv6 with TLVs, UNIX, and a plain RTSP request.
    v2sig = b"\r\n\r\n\x00\r\nQUIT\n"
    write("proxy_protocol", "haproxy-v1", b"PROXY TCP4 127.0.0.2 127.0.0.1 40000 18554\r\nOPTIONS")
    write("proxy_protocol", "haproxy-v2",
          v2sig + bytes.fromhex("2111000c7f0000027f0000019c41487b") + b"OPTIONS")
    write("proxy_protocol", "v1-tcp6", "PROXY TCP6 " + " ".join(["ffff:" * 7 + "ffff"] * 2) + " 65535 65535\r\n")
    write("proxy_protocol", "v1-unknown", b"PROXY UNKNOWN\r\n")
    write("proxy_protocol", "v2-local", v2sig + b"\x20\x00\x00\x00")
    v6 = bytes(range(32)) + struct.pack("!HH", 1234, 554)
    tlvs = b"\x01\x00\x02h2" + b"\x04\x00\x00"
    write("proxy_protocol", "v2-tcp6-tlvs", v2sig + b"\x21\x21" + struct.pack("!H", len(v6 + tlvs)) + v6 + tlvs)
    write("proxy_protocol", "v2-unix", v2sig + b"\x21\x31" + struct.pack("!H", 216) + bytes(216))
    write("proxy_protocol", "rtsp", b"OPTIONS rtsp://127.0.0.1/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n")

    # mpegts: ffmpeg's H.264 + AAC (audio flagged random access too), seven
    # TS packets per RTP payload as rtpmp2tpay sends them: the start (PAT, PMT,
    # first keyframe) and the stretch around the second keyframe.
    ts = (DATA / "mpegts" / "ffmpeg_h264_aac.ts").read_bytes()
    write("mpegts", "ffmpeg-start", bytes([6]) + ts[: 188 * 70])
    second = next(
        i for i in range(188 * 10, len(ts), 188)
        if ts[i + 1] & 0x40 and ((ts[i + 1] & 0x1F) << 8 | ts[i + 2]) == 0x100
        and ts[i + 3] & 0x20 and ts[i + 4] > 0 and ts[i + 5] & 0x40
    )
    write("mpegts", "ffmpeg-second-keyframe", bytes([6]) + ts[:188 * 2] + ts[second - 188 * 20: second + 188 * 30])
    write("mpegts", "ffmpeg-one-per-payload", bytes([0]) + ts[: 188 * 40])

    total = sum(1 for t in TARGETS for _ in (SEEDS / t).iterdir())
    size = sum(p.stat().st_size for t in TARGETS for p in (SEEDS / t).iterdir())
    print(f"{total} seeds, {size} bytes")


if __name__ == "__main__":
    main()
