//! End-to-end tests of REGISTER / DEREGISTER (`-R`, `-U`): the real `rtsp-proxy`
//! binary, the `rtsp-proxy register` / `deregister` subcommands, a GStreamer back
//! end and ffprobe, all on loopback; live555's registerRTSPStream as exact bytes.

mod support;

use std::net::TcpListener;
use std::process::{Command, Output};
use std::thread;
use std::time::Duration;

use support::*;

const PROBE: Duration = Duration::from_secs(30);
const RUN: Duration = Duration::from_secs(20);
const RAW: Duration = Duration::from_secs(5);
const REGISTER_READY: &str = "We handle incoming \"REGISTER\" requests";

/// Runs `rtsp-proxy <args...>` (a subcommand) to its end.
fn subcommand(args: &[&str]) -> Output {
    let mut cmd = Command::new(Proxy::binary());
    cmd.env_remove("RUST_LOG").args(args);
    run_with_timeout(&mut cmd, RUN).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `rtsp-proxy register [options] 127.0.0.1 <proxy port> <url> [suffix]`.
fn register(proxy: &Proxy, options: &[&str], url: &str, suffix: Option<&str>) -> Output {
    let port = proxy.port().to_string();
    let mut args = vec!["register"];
    args.extend_from_slice(options);
    args.extend_from_slice(&["127.0.0.1", &port, url]);
    args.extend(suffix);
    subcommand(&args)
}

fn deregister(proxy: &Proxy, options: &[&str], suffix: &str) -> Output {
    let port = proxy.port().to_string();
    let mut args = vec!["deregister"];
    args.extend_from_slice(options);
    args.extend_from_slice(&["127.0.0.1", &port, suffix]);
    subcommand(&args)
}

fn assert_exit(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
}

fn raw(proxy: &Proxy, text: &str) -> String {
    rtsp_exchange(proxy.addr(), text.as_bytes(), RAW).expect("raw exchange")
}

fn describe_status(proxy: &Proxy, name: &str) -> String {
    let resp = raw(
        proxy,
        &format!(
            "DESCRIBE {} RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n",
            proxy.url(name)
        ),
    );
    resp.lines().next().unwrap_or_default().to_owned()
}

/// Waits until DESCRIBE of `name` is 200 (GStreamer answers 503 to a DESCRIBE that
/// races another one preparing the same media; the proxy then retries).
fn wait_described(proxy: &Proxy, name: &str) {
    for _ in 0..40 {
        if describe_status(proxy, name).contains(" 200 ") {
            return;
        }
        thread::sleep(Duration::from_millis(250));
    }
    panic!("{name} was never described");
}

fn assert_plays(proxy: &Proxy, name: &str, transport: &str) {
    wait_described(proxy, name);
    let streams = ffprobe_streams(&proxy.url(name), transport, PROBE)
        .unwrap_or_else(|e| panic!("{name} over {transport}: {e}"));
    let codecs: Vec<&str> = streams.iter().map(|s| s.codec_name.as_str()).collect();
    assert_eq!(codecs, ["h264", "aac"], "{name}");
}

#[test]
fn register_with_credentials_then_play_then_deregister() {
    let backend = Backend::start(BackendOpts::default());
    let proxy = Proxy::start_until(
        &["-R", "-U", "reg", "s3cret", "--linger", "0"],
        REGISTER_READY,
    );
    let creds = ["-u", "reg", "s3cret"];

    let out = register(&proxy, &[], backend.url(), Some("cam1"));
    assert_exit(&out, 1, "401 Unauthorized (the proxy wants credentials");
    let out = register(&proxy, &["-u", "reg", "wrong"], backend.url(), Some("cam1"));
    assert_exit(&out, 1, "401 Unauthorized (wrong username or password)");
    assert_eq!(
        backend.connections(),
        0,
        "nothing registered, nothing dialled"
    );
    assert!(
        !proxy
            .proc
            .lines()
            .iter()
            .any(|l| l.contains("s3cret") || l.contains("wrong")),
        "passwords are never logged"
    );

    let out = register(&proxy, &creds, backend.url(), Some("cam1"));
    assert_exit(&out, 0, "REGISTER");
    assert!(stderr(&out).contains("RTSP/1.0 200 OK"), "{}", stderr(&out));
    proxy
        .proc
        .wait_for_line(
            &format!(
                "Proxying the registered back-end stream \"{}\".",
                backend.url()
            ),
            RUN,
        )
        .expect("announced");
    let play = proxy.proc.wait_for_line(PLAY_LINE, RUN).expect("play line");
    assert!(play.ends_with(&format!(":{}/cam1", proxy.port())), "{play}");
    assert_plays(&proxy, "cam1", "tcp");

    let out = register(&proxy, &creds, backend.url(), Some("cam1"));
    assert_exit(&out, 1, "451 Invalid parameter");

    let out = deregister(&proxy, &[], "cam1");
    assert_exit(&out, 1, "401 Unauthorized");
    wait_described(&proxy, "cam1");

    let out = deregister(&proxy, &creds, "cam1");
    assert_exit(&out, 0, "DEREGISTER");
    backend
        .wait_for_requests("TEARDOWN", 1, RUN)
        .expect("the back end got TEARDOWN");
    assert!(
        describe_status(&proxy, "cam1").contains(" 404 "),
        "removed streams are 404"
    );
    let out = deregister(&proxy, &creds, "cam1");
    assert_exit(&out, 1, "451 Invalid parameter");
}

#[test]
fn suffixless_names_public_header_and_deregister_rules() {
    // Two streams of the proxy share the back end's media: GStreamer answers 503
    // to a DESCRIBE while its shared media is suspended in reset mode.
    let backend = Backend::start(BackendOpts::suspend(SuspendMode::None));
    let proxy = Proxy::start_until(&["-R"], REGISTER_READY);
    let options = raw(&proxy, "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    assert!(
        options.contains(
            "Public: OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY, PAUSE, GET_PARAMETER, SET_PARAMETER, REGISTER, DEREGISTER\r\n"
        ),
        "{options}"
    );

    for k in 1..=2 {
        let out = register(&proxy, &[], backend.url(), None);
        assert_exit(&out, 0, "200 OK");
        proxy
            .proc
            .wait_for_line(&format!("/registeredProxyStream-{k}"), RUN)
            .unwrap_or_else(|e| panic!("{e}"));
        // One at a time: GStreamer's shared media keeps answering 503 to a
        // DESCRIBE that raced the one preparing it.
        wait_described(&proxy, &format!("registeredProxyStream-{k}"));
    }
    assert_plays(&proxy, "registeredProxyStream-2", "udp");

    let bad = raw(
        &proxy,
        "DEREGISTER rtsp://127.0.0.1/x RTSP/1.0\r\nCSeq: 3\r\n\r\n",
    );
    assert!(
        bad.starts_with("RTSP/1.0 451 Invalid parameter\r\n"),
        "no suffix: {bad}"
    );
    let unknown = raw(
        &proxy,
        "DEREGISTER rtsp://127.0.0.1/x RTSP/1.0\r\nCSeq: 4\r\nTransport: proxy_url_suffix=nosuch\r\n\r\n",
    );
    assert!(
        unknown.starts_with("RTSP/1.0 451 Invalid parameter\r\n"),
        "{unknown}"
    );
    // Without -U, only the registering address may deregister: here it is the
    // same (loopback), so it works.
    let out = deregister(&proxy, &[], "registeredProxyStream-1");
    assert_exit(&out, 0, "200 OK");
    assert!(describe_status(&proxy, "registeredProxyStream-1").contains(" 404 "));
    wait_described(&proxy, "registeredProxyStream-2");
    let out = register(&proxy, &[], backend.url(), None);
    assert_exit(&out, 0, "200 OK");
    proxy
        .proc
        .wait_for_line("/registeredProxyStream-3", RUN)
        .expect("the counter goes on");

    // Without -R, REGISTER is 405 and not in Public.
    let plain = Proxy::start(&["--demo"]);
    let resp = raw(
        &plain,
        &format!(
            "REGISTER {} RTSP/1.0\r\nCSeq: 1\r\nTransport: preferred_delivery_protocol=udp\r\n\r\n",
            backend.url()
        ),
    );
    assert!(resp.starts_with("RTSP/1.0 405 "), "{resp}");
    assert!(!resp.contains("REGISTER"), "{resp}");
}

#[test]
fn reuse_connection_pulls_the_stream_over_the_registering_connection() {
    // Two streams share the back end's media (see above).
    let backend = Backend::start(BackendOpts::suspend(SuspendMode::None));
    // -V: the back-end RTSP exchange is logged (to see the SETUP transports).
    let proxy = Proxy::start_until(&["-R", "-V"], REGISTER_READY);
    let port = proxy.port().to_string();
    let mut cmd = Command::new(Proxy::binary());
    cmd.env_remove("RUST_LOG").args([
        "register",
        "-t",
        "--reuse-connection",
        "127.0.0.1",
        &port,
        backend.url(),
        "natcam",
    ]);
    let relay = Proc::spawn("register", &mut cmd).expect("register subcommand");
    let line = relay.wait_for_line("Relaying", RUN).expect("relaying");
    // "... to the back end 127.0.0.1:P (from 127.0.0.1:Q) ..."
    let from = line
        .split("(from ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    assert_plays(&proxy, "natcam", "tcp");
    let connected: Vec<String> = backend
        .proc
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("CLIENT-CONNECTED "))
        .collect();
    assert_eq!(
        connected,
        [format!("CLIENT-CONNECTED {from}")],
        "the back end's only connection is the relayed one: the proxy dialled nobody"
    );
    // The registering connection goes away: the proxy says so and dials the URL.
    drop(relay);
    proxy
        .proc
        .wait_for_line(
            "the connection the back end registered on is gone; dialling",
            RUN,
        )
        .expect("fallback announced");
    backend
        .proc
        .wait_for_count("CLIENT-CONNECTED", 2, RUN)
        .expect("the proxy redials the registered URL");

    // A URL the proxy may not dial (a host name): accepted with reuse_connection,
    // pulled over that connection only, and removed once it is gone.
    let url = format!("rtsp://localhost:{}/stream", backend.port());
    let mut cmd = Command::new(Proxy::binary());
    cmd.env_remove("RUST_LOG").args([
        "register",
        "-t",
        "--reuse-connection",
        "127.0.0.1",
        &port,
        &url,
        "behindnat",
    ]);
    let relay = Proc::spawn("register", &mut cmd).expect("register subcommand");
    relay.wait_for_line("Relaying", RUN).expect("relaying");
    assert_plays(&proxy, "behindnat", "tcp");
    let before = backend.connections();
    drop(relay);
    proxy
        .proc
        .wait_for_line(
            "is not dialled (its host is not in --register-allow), so the stream is removed",
            RUN,
        )
        .expect("no redial");
    let mut gone = false;
    for _ in 0..20 {
        if describe_status(&proxy, "behindnat").contains(" 404 ") {
            gone = true;
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    assert!(gone, "the stream is removed");
    assert_eq!(backend.connections(), before, "and nobody was dialled");
    // The name is free for the back end's next REGISTER; this time with UDP media
    // (as asked: over loopback it arrives), the RTSP still on the relayed connection.
    let udp_setup = "Transport: RTP/AVP;unicast;client_port=";
    assert_eq!(
        proxy.proc.count_lines(udp_setup),
        0,
        "so far all interleaved"
    );
    let mut cmd = Command::new(Proxy::binary());
    cmd.env_remove("RUST_LOG").args([
        "register",
        "--reuse-connection",
        "127.0.0.1",
        &port,
        backend.url(),
        "behindnat",
    ]);
    let relay = Proc::spawn("register", &mut cmd).expect("register subcommand");
    relay.wait_for_line("Relaying", RUN).expect("relaying");
    assert_plays(&proxy, "behindnat", "udp");
    assert!(
        proxy.proc.count_lines_settled(udp_setup, 1) >= 1,
        "UDP SETUPs to the back end"
    );
    assert_eq!(backend.connections(), before + 1, "only the relayed one");
}

#[test]
fn limits_allow_list_and_live555_register_bytes() {
    // Two streams share the back end's media (see above).
    let backend = Backend::start(BackendOpts::suspend(SuspendMode::None));
    let proxy = Proxy::start_until(&["-R", "--max-registered", "2"], REGISTER_READY);

    // Exactly what live555's registerRTSPStream sends.
    let resp = raw(
        &proxy,
        &format!(
            "REGISTER {} RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: registerRTSPStream (LIVE555 Streaming Media v2026.06.24)\r\nTransport: preferred_delivery_protocol=udp; proxy_url_suffix=raw1\r\n\r\n",
            backend.url()
        ),
    );
    assert!(
        resp.starts_with("RTSP/1.0 200 OK\r\nCSeq: 1\r\nDate: "),
        "{resp}"
    );

    // A URL the proxy may not dial: a host name, and another address than the
    // registering one. Refused, and nobody is connected to.
    let trap = TcpListener::bind("127.0.0.1:0").expect("trap listener");
    trap.set_nonblocking(true).expect("nonblocking");
    let trap_port = trap.local_addr().expect("addr").port();
    for url in [
        format!("rtsp://localhost:{trap_port}/x"),
        format!("rtsp://127.0.0.2:{trap_port}/x"),
    ] {
        let out = register(&proxy, &[], &url, Some("outside"));
        assert_exit(&out, 1, "403 Forbidden");
    }
    let resp = raw(
        &proxy,
        "REGISTER http://127.0.0.1/x RTSP/1.0\r\nCSeq: 1\r\n\r\n",
    );
    assert!(resp.starts_with("RTSP/1.0 400 "), "{resp}");

    let out = register(&proxy, &["-t"], backend.url(), Some("second"));
    assert_exit(&out, 0, "200 OK");
    let out = register(&proxy, &[], backend.url(), Some("third"));
    assert_exit(&out, 1, "453 Not Enough Bandwidth");
    proxy
        .proc
        .wait_for_line("already 2 registered streams", RUN)
        .expect("the limit is logged");
    proxy
        .proc
        .wait_for_line("its host is not allowed", RUN)
        .expect("the refusal is logged");

    // The others are still served (raw1 over UDP from the back end, second over TCP).
    assert_plays(&proxy, "raw1", "udp");
    wait_described(&proxy, "second");
    thread::sleep(Duration::from_millis(300));
    assert!(
        matches!(trap.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the proxy never connected to a refused URL"
    );
}
