#!/usr/bin/python3
"""A real RTSP back end ("camera") for the end-to-end tests of rtsp-proxy.

It serves one live, shared stream with GStreamer's RTSP server (python3-gi,
GstRtspServer 1.0) and reports what happens on stdout, one line per event,
flushed at once, so that tests can wait for and count events:

    READY rtsp://127.0.0.1:PORT/path       once, when the server listens
                                           (rtsps:// with --tls-cert/--tls-key)
    CLIENT-CONNECTED <ip>:<port>           each new RTSP (TCP) connection
    CLIENT-CLOSED <ip>:<port>              each closed RTSP connection
    REQUEST <METHOD>                       each RTSP request received (see below)
    RESPONSE <code>                        each RTSP response sent
    SESSION-EXPIRED <count>                sessions removed for lack of keep-alive

`REQUEST` lines come from the client's `pre-*-request` signals, which fire for
every request that reached its handler with a syntactically valid message (and,
for session-bound methods, a known session), *before* authorization and media
checks: a SETUP refused with 461 or a DESCRIBE answered with 401 is still
counted.

Everything the media produces is live (`is-live=true`), the media is shared
between clients, and by default (`--suspend-mode reset`) it is reset when
suspended so that a client that DESCRIBEs and PLAYs later does not receive a
burst of stale frames. `--suspend-mode none` is GStreamer's own default (the
pipeline is left as it is: PAUSE/PLAY pause and resume it), `pause` brings it
to PAUSED when suspended.

With `--mpegts` the tracks of `--codecs` (h264, h265, aac) are muxed by
`mpegtsmux` into one MPEG-TS sent as one RTP track (RFC 2250 `MP2T`,
`rtpmp2tpay`); with `--ts-file PATH` an MPEG-TS file (say, made by `ffmpeg -f
mpegts`) is sent as it is, looped, paced by its PCR (`tsparse
set-timestamps=true`), so that what another muxer wrote reaches the clients.

With `--tls-cert` and `--tls-key` (PEM files) it serves RTSPS (RTSP over TLS)
only (transports as usual: a client that asks for TCP gets its media inside
the TLS connection).

Exit status: 0 after SIGTERM/SIGINT, 2 on bad arguments, when the port cannot
be bound or the TLS certificate cannot be loaded, 3 when a GStreamer element is
missing.

Example:
    /usr/bin/python3 tests/backend/gst_rtsp_backend.py --port 8554 --codecs h264,aac
"""

import argparse
import signal
import sys
import threading
import warnings

import gi

gi.require_version("Gio", "2.0")
gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

# h264high: H.264 High profile (x264 veryfast: ultrafast gives Constrained
# Baseline whatever the caps); pcma: G.711 A-law at 8 kHz mono.
VIDEO_CODECS = ("h264", "h264high", "h265", "mjpeg")
AUDIO_CODECS = ("aac", "opus", "pcma")
ALL_CODECS = VIDEO_CODECS + AUDIO_CODECS

# Methods whose pre-*-request signal is reported as "REQUEST <METHOD>".
REQUEST_SIGNALS = (
    ("options", "OPTIONS"),
    ("describe", "DESCRIBE"),
    ("setup", "SETUP"),
    ("play", "PLAY"),
    ("pause", "PAUSE"),
    ("teardown", "TEARDOWN"),
    ("get-parameter", "GET_PARAMETER"),
    ("set-parameter", "SET_PARAMETER"),
    ("announce", "ANNOUNCE"),
    ("record", "RECORD"),
)

# --suspend-mode values (GstRTSPSuspendMode).
SUSPEND_MODES = {
    "none": GstRtspServer.RTSPSuspendMode.NONE,
    "pause": GstRtspServer.RTSPSuspendMode.PAUSE,
    "reset": GstRtspServer.RTSPSuspendMode.RESET,
}

# How often expired RTSP sessions are removed, in seconds.
SESSION_CLEANUP_INTERVAL_S = 1


_EMIT_LOCK = threading.Lock()


def emit(line):
    """Writes one event line on stdout and flushes it. One write under a lock:
    print() writes the line and its newline apart, and events come from
    several GStreamer threads, so two lines could run into one
    ("REQUEST TEARDOWNCLIENT-CONNECTED ...") and a test would miss one."""
    with _EMIT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def fail(message, status):
    """Reports a fatal error on stderr and exits with `status`."""
    print(f"gst_rtsp_backend: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def have_element(name):
    return Gst.ElementFactory.find(name) is not None


def require_elements(names):
    missing = [n for n in names if not have_element(n)]
    if missing:
        fail("missing GStreamer element(s): " + ", ".join(missing), 3)


def aac_encoder():
    """Returns the first AAC encoder available (Debian: avenc_aac or voaacenc)."""
    for name in ("avenc_aac", "voaacenc", "fdkaacenc"):
        if have_element(name):
            return name
    fail("no AAC encoder (avenc_aac, voaacenc or fdkaacenc)", 3)
    return None  # unreachable


def video_source(args):
    # A moving pattern so that motion is visible (`--pattern snow`: noise,
    # which no encoder can compress, for tests that need the bitrate asked
    # for); the leaky queue right after the live source drops frames (instead
    # of queueing them) whenever the pipeline downstream is blocked, e.g.
    # between DESCRIBE and PLAY.
    return (
        f"videotestsrc is-live=true pattern={args.pattern} ! "
        f"video/x-raw,format=I420,width={args.width},height={args.height},"
        f"framerate={args.fps}/1 ! "
        "queue leaky=downstream max-size-buffers=2 max-size-bytes=0 max-size-time=0"
    )


def audio_source():
    # 20 ms buffers at 48 kHz stereo.
    return (
        "audiotestsrc is-live=true wave=sine freq=440 volume=0.2 samplesperbuffer=960 ! "
        "audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 ! "
        "queue leaky=downstream max-size-buffers=4 max-size-bytes=0 max-size-time=0"
    )


def branch(codec, index, args):
    """The launch-line fragment of one track, payloader named pay<index>."""
    pt = 96 + index
    pay = f"name=pay{index} pt={pt}"
    # Like a camera: one slice per frame (threads=1: zerolatency would
    # otherwise cut frames into slices), a closed GOP of `--key-interval`
    # seconds (default one), and the parameter sets in-band before every IDR,
    # once (the encoder repeats them, so the payloader does not insert them
    # again: config-interval=0).
    key_int_max = args.key_interval * args.fps
    if codec == "h264":
        require_elements(["x264enc", "rtph264pay"])
        return f"{video_encoder(codec, args)} ! rtph264pay {pay} config-interval=0"
    if codec == "h264high":
        require_elements(["x264enc", "rtph264pay"])
        return (
            f"{video_source(args)} ! "
            f"x264enc speed-preset=veryfast tune=zerolatency threads=1 key-int-max={key_int_max} "
            f"bitrate={args.bitrate} byte-stream=true ! "
            "video/x-h264,profile=high ! "
            f"rtph264pay {pay} config-interval=0"
        )
    if codec == "h265":
        require_elements(["x265enc", "rtph265pay"])
        return f"{video_encoder(codec, args)} ! rtph265pay {pay} config-interval=0"
    if codec == "mjpeg":
        require_elements(["jpegenc", "rtpjpegpay"])
        return f"{video_source(args)} ! jpegenc quality=50 ! rtpjpegpay {pay}"
    if codec == "aac":
        encoder = aac_encoder()
        require_elements(["rtpmp4gpay"])
        return f"{audio_source()} ! {encoder} bitrate=64000 ! rtpmp4gpay {pay}"
    if codec == "opus":
        require_elements(["opusenc", "rtpopuspay"])
        return f"{audio_source()} ! opusenc bitrate=64000 ! rtpopuspay {pay}"
    if codec == "pcma":
        require_elements(["alawenc", "rtppcmapay"])
        return (
            "audiotestsrc is-live=true wave=sine freq=440 volume=0.2 samplesperbuffer=160 ! "
            "audioconvert ! audioresample ! audio/x-raw,rate=8000,channels=1 ! "
            "queue leaky=downstream max-size-buffers=4 max-size-bytes=0 max-size-time=0 ! "
            f"alawenc ! rtppcmapay {pay}"
        )
    fail(f"unknown codec {codec!r}", 2)
    return None  # unreachable


def video_encoder(codec, args):
    """The live source and encoder of an h264 or h265 track, up to its
    elementary stream (byte-stream, parameter sets in-band before every IDR)."""
    key_int_max = args.key_interval * args.fps
    if codec == "h264":
        return (
            f"{video_source(args)} ! "
            f"x264enc speed-preset=ultrafast tune=zerolatency threads=1 key-int-max={key_int_max} "
            f"bitrate={args.bitrate} byte-stream=true ! "
            "video/x-h264,profile=constrained-baseline"
        )
    return (
        f"{video_source(args)} ! "
        f"x265enc speed-preset=ultrafast tune=zerolatency key-int-max={key_int_max} "
        f"bitrate={args.bitrate} option-string=open-gop=0:repeat-headers=1:info=0"
    )


def mpegts_line(args):
    """--mpegts: the tracks muxed live by mpegtsmux, one MP2T track (pay0)."""
    require_elements(["mpegtsmux", "rtpmp2tpay"])
    inputs = []
    for codec in args.codecs:
        if codec in ("h264", "h265"):
            require_elements(["x264enc" if codec == "h264" else "x265enc", f"{codec}parse"])
            inputs.append(f"{video_encoder(codec, args)} ! {codec}parse ! mux.")
        elif codec == "aac":
            require_elements(["aacparse"])
            inputs.append(f"{audio_source()} ! {aac_encoder()} bitrate=64000 ! aacparse ! mux.")
        else:
            fail(f"--mpegts muxes h264, h265 and aac, not {codec!r}", 2)
    return (
        "( mpegtsmux name=mux alignment=7 ! rtpmp2tpay name=pay0 pt=33  "
        + "  ".join(inputs)
        + " )"
    )


def ts_file_line(path):
    """--ts-file: the file's TS packets as they are, looped, paced by its PCR."""
    require_elements(["multifilesrc", "tsparse", "rtpmp2tpay"])
    location = path.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'( multifilesrc location="{location}" loop=true '
        "caps=video/mpegts,systemstream=true,packetsize=188 ! "
        "tsparse set-timestamps=true alignment=7 ! rtpmp2tpay name=pay0 pt=33 )"
    )


def launch_line(args):
    if args.ts_file is not None:
        return ts_file_line(args.ts_file)
    if args.mpegts:
        return mpegts_line(args)
    return "( " + "  ".join(branch(c, i, args) for i, c in enumerate(args.codecs)) + " )"


def parse_codecs(text):
    codecs = [c.strip().lower() for c in text.split(",") if c.strip()]
    if not codecs:
        raise argparse.ArgumentTypeError("at least one codec is needed")
    for codec in codecs:
        if codec not in ALL_CODECS:
            raise argparse.ArgumentTypeError(
                f"unknown codec {codec!r} (choose from {', '.join(ALL_CODECS)})"
            )
    if len(set(codecs)) != len(codecs):
        raise argparse.ArgumentTypeError("a codec is listed twice")
    return codecs


def parse_protocols(text):
    flags = GstRtsp.RTSPLowerTrans(0)
    names = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not names:
        raise argparse.ArgumentTypeError("at least one protocol is needed")
    for name in names:
        if name == "udp":
            flags |= GstRtsp.RTSPLowerTrans.UDP
        elif name == "tcp":
            flags |= GstRtsp.RTSPLowerTrans.TCP
        elif name == "udp-mcast":
            flags |= GstRtsp.RTSPLowerTrans.UDP_MCAST
        else:
            raise argparse.ArgumentTypeError(
                f"unknown protocol {name!r} (udp, tcp or udp-mcast)")
    return flags


def parse_path(text):
    if not text.startswith("/") or len(text) < 2:
        raise argparse.ArgumentTypeError("the path must start with '/' and not be empty")
    return text


def positive(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description="GStreamer RTSP back end for rtsp-proxy tests")
    p.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8554, help="RTSP port; 0 picks a free one")
    p.add_argument("--path", type=parse_path, default="/stream", help="mount path (default /stream)")
    p.add_argument("--codecs", type=parse_codecs, default=["h264", "aac"],
                   help="comma list of h264,h264high,h265,mjpeg,aac,opus,pcma; video first (default h264,aac)")
    p.add_argument("--user", help="require authentication with this user name")
    p.add_argument("--password", help="password of --user")
    p.add_argument("--auth", choices=("digest", "basic"), default="digest",
                   help="authentication scheme with --user (default digest)")
    p.add_argument("--mpegts", action="store_true",
                   help="mux the --codecs (h264, h265, aac) into one MPEG-TS track (MP2T)")
    p.add_argument("--ts-file", default=None,
                   help="serve this MPEG-TS file (looped) as one MP2T track, as it is")
    p.add_argument("--tls-cert", help="serve RTSPS with this PEM certificate (chain)")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--protocols", type=parse_protocols, default=None,
                   help="allowed lower transports, comma list of udp,tcp,udp-mcast "
                   "(default udp,tcp; udp-mcast needs --multicast)")
    p.add_argument("--multicast", nargs=2, metavar=("FIRST", "LAST"), default=None,
                   help="offer multicast from the IPv4 group range FIRST..LAST (an "
                   "address pool; ports 5000-5999, ttl 1); without --protocols the "
                   "back end then requires multicast (udp-mcast only)")
    p.add_argument("--width", type=positive, default=320)
    p.add_argument("--height", type=positive, default=240)
    p.add_argument("--fps", type=positive, default=25)
    p.add_argument("--key-interval", type=positive, default=1,
                   help="seconds between H.264/H.265 keyframes (key-int-max = this * fps; "
                   "default 1)")
    p.add_argument("--bitrate", type=positive, default=500,
                   help="video bitrate, kbit/s (an upper bound: the default pattern "
                   "compresses to far less)")
    p.add_argument("--pattern", choices=("ball", "snow"), default="ball",
                   help="video test pattern: ball (default, a moving ball) or snow "
                   "(noise: the H.264/H.265 bitrate then reaches --bitrate)")
    p.add_argument("--suspend-mode", choices=tuple(SUSPEND_MODES), default="reset",
                   help="what the media does when suspended (no client playing): "
                   "none (GStreamer's default), pause, or reset (default: reset)")
    p.add_argument("--session-timeout", type=positive, default=None,
                   help="RTSP session timeout announced and enforced (s); without it "
                   "GStreamer announces 60 s and expires sessions 5 s later")
    args = p.parse_args(argv)
    if (args.user is None) != (args.password is None):
        p.error("--user and --password go together")
    if (args.tls_cert is None) != (args.tls_key is None):
        p.error("--tls-cert and --tls-key go together")
    if not 0 <= args.port <= 65535:
        p.error("--port must be within 0..65535")
    if args.multicast is not None and args.protocols is None:
        args.protocols = GstRtsp.RTSPLowerTrans.UDP_MCAST
    return args


def peer_of(client):
    """`ip:port` of the client's connection, or just `ip` if the port is unknown."""
    conn = client.get_connection()
    if conn is None:
        return "?"
    ip = conn.get_ip()
    try:
        sock = conn.get_read_socket()
        port = sock.get_remote_address().get_port() if sock is not None else None
    except GLib.Error:
        port = None
    return f"{ip}:{port}" if port else str(ip)


# The introspection data of GstRTSPClient::send-message still describes its
# first argument as a GstRTSPSession while 1.22 passes a GstRTSPContext, so
# PyGObject logs one harmless g_value_get_object critical (turned into a Python
# warning) per emission; the handler never uses that argument.
warnings.filterwarnings("ignore", message=r".*G_VALUE_HOLDS_OBJECT.*")


def on_response_sent(_client, _unused, message):
    if message.get_type() != GstRtsp.RTSPMsgType.RESPONSE:
        return
    result, code, _reason, _version = message.parse_response()
    if result == GstRtsp.RTSPResult.OK:
        emit(f"RESPONSE {int(code)}")


def make_request_handler(method):
    def handler(_client, _ctx):
        emit(f"REQUEST {method}")
        return GstRtsp.RTSPStatusCode.OK

    return handler


def on_new_session(_client, session, timeout):
    # Announce `timeout` and enforce exactly that: by default GStreamer grants
    # 5 s beyond the announced timeout (the session's extra-timeout).
    session.set_timeout(timeout)
    session.set_property("extra-timeout", 0)


def on_client_connected(_server, client, session_timeout):
    peer = peer_of(client)
    emit(f"CLIENT-CONNECTED {peer}")
    for signal_name, method in REQUEST_SIGNALS:
        client.connect(f"pre-{signal_name}-request", make_request_handler(method))
    client.connect("send-message", on_response_sent)
    client.connect("closed", lambda _c: emit(f"CLIENT-CLOSED {peer}"))
    if session_timeout is not None:
        client.connect("new-session", on_new_session, session_timeout)


def configure_auth(server, factory, args):
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "tester")
    auth = GstRtspServer.RTSPAuth()
    if args.tls_cert is not None:
        configure_tls(auth, args)
    if args.user is None:
        # TLS without a user: everyone gets the role (an RTSPAuth refuses
        # anonymous clients without a default token).
        auth.set_default_token(token)
    elif args.auth == "digest":
        auth.add_digest(args.user, args.password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    else:
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role("tester", "media.factory.access", True)
    permissions.add_permission_for_role("tester", "media.factory.construct", True)
    factory.set_permissions(permissions)


def configure_tls(auth, args):
    try:
        cert = Gio.TlsCertificate.new_from_files(args.tls_cert, args.tls_key)
    except GLib.Error as err:
        fail(f"cannot load {args.tls_cert} / {args.tls_key}: {err.message}", 2)
    auth.set_tls_certificate(cert)


def main(argv):
    args = parse_args(argv)
    Gst.init(None)
    require_elements(["videotestsrc", "audiotestsrc", "queue", "audioconvert", "audioresample"])

    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args))
    factory.set_shared(True)
    # By default (reset) bring the pipeline back to NULL whenever the media is
    # suspended (after DESCRIBE prepared it, before PLAY): PLAY then restarts
    # the live sources with a fresh base time instead of releasing frames
    # queued meanwhile. `none` is GStreamer's default configuration.
    factory.set_suspend_mode(SUSPEND_MODES[args.suspend_mode])
    if args.protocols is not None:
        factory.set_protocols(args.protocols)
    if args.multicast is not None:
        pool = GstRtspServer.RTSPAddressPool()
        first, last = args.multicast
        if not pool.add_range(first, last, 5000, 5999, 1):
            fail(f"bad multicast range {first}..{last}", 2)
        factory.set_address_pool(pool)
    if args.user is not None or args.tls_cert is not None:
        configure_auth(server, factory, args)
    server.get_mount_points().add_factory(args.path, factory)
    server.connect("client-connected", on_client_connected, args.session_timeout)

    try:
        source_id = server.attach(None)
    except GLib.Error as err:
        fail(f"cannot listen on {args.address}:{args.port}: {err.message}", 2)
    if source_id == 0:
        fail(f"cannot listen on {args.address}:{args.port}", 2)

    pool = server.get_session_pool()

    def cleanup_sessions():
        expired = pool.cleanup()
        if expired > 0:
            emit(f"SESSION-EXPIRED {expired}")
        return GLib.SOURCE_CONTINUE

    GLib.timeout_add_seconds(SESSION_CLEANUP_INTERVAL_S, cleanup_sessions)

    loop = GLib.MainLoop()

    def stop():
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, stop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, stop)

    host = args.address if ":" not in args.address else f"[{args.address}]"
    scheme = "rtsps" if args.tls_cert is not None else "rtsp"
    emit(f"READY {scheme}://{host}:{server.get_bound_port()}{args.path}")
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
