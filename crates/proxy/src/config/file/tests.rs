use super::*;

fn err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

/// The [`FileError`] of a load that must fail on the file.
fn file_error(loaded: Result<Config, LoadError>) -> FileError {
    match loaded {
        Err(LoadError::File(e)) => e,
        other => panic!("not a file error: {other:?}"),
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_with(
    text: &str,
    args: &[&str],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, LoadError> {
    let mut all = vec!["--config".to_owned(), "/etc/p.toml".to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    load_text(Path::new("/etc/p.toml"), text, "rtsp-proxy", &all, env)
}

const FULL: &str = r#"
[server]
rtsp_port = 8554
bind = ["127.0.0.1"]
http_port = 0
client_users = [{ user = "viewer", password = "pw" }]
max_registered = 5

[admin]
listen = "127.0.0.1:9997"
token = "t0k"

[defaults]
linger = 2.5
response_timeout = 4
max_gap = 0

[paths.front-door]
source = "rtsp://cam1.local/stream1"
transport = "tcp"
user = "admin"
password_env = "CAM1_PASSWORD"
on_demand = true

[paths."cams/back"]
source = "rtsp://cam2.local/s"
transport = "http"
http_port = 8080
linger = 0
keyframe_cache = 0
"#;

#[test]
fn a_full_file() {
    let env = |v: &str| (v == "CAM1_PASSWORD").then(|| "s3cret".to_owned());
    let c = load_with(FULL, &[], &env).expect("valid");
    assert_eq!(c.rtsp_port, 8554);
    assert_eq!(c.bind_addresses, ["127.0.0.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(c.http_port, HttpPort::Off);
    assert_eq!(c.client_users, [Credentials::new("viewer", "pw")]);
    assert_eq!(c.max_registered, 5);
    let admin = c.admin.as_ref().unwrap();
    assert_eq!(admin.listen, "127.0.0.1:9997".parse().unwrap());
    assert_eq!(admin.token.as_deref(), Some("t0k"));
    assert!(
        !format!("{c:?}").contains("s3cret"),
        "passwords never shown"
    );
    assert!(!format!("{c:?}").contains("t0k"), "tokens never shown");
    let front = &c.paths["front-door"];
    assert_eq!(front.source, "rtsp://cam1.local/stream1");
    assert_eq!(front.options.transport, PathTransport::Tcp);
    assert_eq!(
        front.options.credentials,
        Some(Credentials::new("admin", "s3cret"))
    );
    assert!(front.options.on_demand);
    assert_eq!(
        front.options.linger,
        Duration::from_millis(2500),
        "from [defaults]"
    );
    assert_eq!(front.options.response_timeout, Duration::from_secs(4));
    assert_eq!(front.options.max_gap, None, "max_gap = 0 is off");
    let back = &c.paths["cams/back"];
    assert_eq!(back.options.transport, PathTransport::Http { port: 8080 });
    assert_eq!(back.options.linger, Duration::ZERO, "the path wins");
    assert_eq!(back.options.keyframe_cache_bytes, 0);
    assert!(!back.options.on_demand);
}

#[test]
fn the_command_line_wins_over_the_file_and_adds_its_urls() {
    let env = |_: &str| Some("x".to_owned());
    let c = load_with(FULL, &["-p", "9554", "--linger", "7", "rtsp://h/cli"], &env).unwrap();
    assert_eq!(c.rtsp_port, 9554, "command line over [server]");
    assert_eq!(
        c.defaults.linger,
        Duration::from_secs(7),
        "command line over [defaults]"
    );
    assert_eq!(c.paths["front-door"].options.linger, Duration::from_secs(7));
    assert_eq!(
        c.paths["cams/back"].options.linger,
        Duration::ZERO,
        "a path's own key wins"
    );
    assert_eq!(c.urls, ["rtsp://h/cli"]);
    assert_eq!(c.stream_names(), ["proxyStream"]);
    assert_eq!(c.bind_addresses.len(), 1, "file's bind kept");
}

#[test]
fn a_name_twice_is_refused() {
    let text = "[paths.proxyStream]\nsource = \"rtsp://h/x\"\n";
    let e = file_error(load_with(text, &["rtsp://h/cli"], &no_env));
    assert_eq!(
        (e.error.line, e.error.key.as_str()),
        (Some(1), "paths.proxyStream")
    );
    assert_eq!(
        e.to_string(),
        "/etc/p.toml:1: paths.proxyStream: the name \"proxyStream\" is also a command-line stream"
    );
    assert!(load_with(text, &[], &no_env).is_ok(), "alone it is fine");
}

#[test]
fn a_missing_env_var_names_file_line_and_key() {
    let e = file_error(load_with(FULL, &[], &no_env));
    assert_eq!(
        (e.error.line, e.error.key.as_str()),
        (Some(22), "paths.front-door.password_env")
    );
    assert_eq!(
        e.to_string(),
        "/etc/p.toml:22: paths.front-door.password_env: environment variable CAM1_PASSWORD is not set"
    );
}

#[test]
fn password_files() {
    let dir = std::env::temp_dir().join(format!("rtsp-proxy-pwfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pw");
    std::fs::write(&file, "from-file\nignored\n").unwrap();
    let text = format!(
        "[paths.a]\nsource = \"rtsp://h/a\"\nuser = \"u\"\npassword_file = \"{}\"\n",
        file.display()
    );
    let c = load_with(&text, &[], &no_env).unwrap();
    assert_eq!(
        c.paths["a"].options.credentials,
        Some(Credentials::new("u", "from-file"))
    );
    let missing = dir.join("nope");
    let text = format!(
        "[paths.a]\nsource = \"rtsp://h/a\"\nuser = \"u\"\npassword_file = \"{}\"\n",
        missing.display()
    );
    let e = file_error(load_with(&text, &[], &no_env));
    assert_eq!(
        (e.error.line, e.error.key.as_str()),
        (Some(4), "paths.a.password_file")
    );
    assert!(
        e.error
            .message
            .starts_with(&format!("cannot read {}: ", missing.display())),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_name_line_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[paths.a]\nsource = \"http://h/x\"\n",
            "line 2: paths.a.source: ",
        ),
        (
            "[paths.a]\nsource = \"rtsp://\"\n",
            "line 2: paths.a.source: not a valid rtsp:// or rtsps:// URL",
        ),
        (
            "[paths.a]\nsource = \"rtsp://h/x\"\ntransport = \"quic\"\n",
            "line 3: paths.a.transport: unknown transport \"quic\" (auto, udp, tcp, http or multicast)",
        ),
        (
            "[paths.a]\nsource = \"rtsp://h/x\"\ntransport = \"http\"\n",
            "line 3: paths.a.transport: \"http\" needs http_port",
        ),
        (
            "[paths.a]\nsource = \"rtsp://h/x\"\nhttp_port = 80\n",
            "line 3: paths.a.http_port: only with transport = \"http\"",
        ),
        (
            "[defaults]\nlinger = -1\n",
            "line 2: defaults.linger: -1 s: must be 0 or more",
        ),
        (
            "[defaults]\nresponse_timeout = 0\n",
            "line 2: defaults.response_timeout: 0 s: must be more than 0",
        ),
        (
            "[paths.a]\nsource = \"rtsp://h/x\"\nreconnect_min = 0.0\n",
            "line 3: paths.a.reconnect_min: 0 s: must be more than 0",
        ),
        (
            "[defaults]\nudp_timeout = \"5s\"\n",
            "line 2: defaults.udp_timeout: must be a number of seconds, not string",
        ),
        (
            "[paths.a]\nsource = \"rtsp://h/x\"\nuser = \"u\"\npassword = \"p\"\npassword_env = \"P\"\n",
            "line 5: paths.a.password_env: give only one of password and password_env",
        ),
        (
            "[paths.a]\nsource = \"rtsp://h/x\"\npassword = \"p\"\n",
            "line 3: paths.a.password: a password needs a user",
        ),
        (
            "[paths.\"a b\"]\nsource = \"rtsp://h/x\"\n",
            "line 1: paths.a b: path name \"a b\" has ' ', which cannot be in an RTSP URL path",
        ),
        (
            "[paths.\"a?b\"]\nsource = \"rtsp://h/x\"\n",
            "line 1: paths.a?b: path name \"a?b\" has '?'",
        ),
        ("[paths.a]\ntransport = \"tcp\"\n", "line 1: paths.a: no source"),
        (
            "[defaults]\nsource = \"rtsp://h/x\"\n",
            "line 2: defaults.source: a source belongs in a [paths.NAME] table",
        ),
        (
            "[server]\nrtsp_port = 70000\n",
            "line 2: server.rtsp_port: 70000 is not a port number (1..65535)",
        ),
        (
            "[server]\nbind = [\"localhost\"]\n",
            "line 2: server.bind: \"localhost\" is not an IP address",
        ),
        (
            "[admin]\nlisten = \"nowhere\"\n",
            "line 2: admin.listen: \"nowhere\" is not an address:port",
        ),
        (
            "[admin]\nlisten = \"127.0.0.1:9997\"\ntoken = \"a\"\ntoken_env = \"T\"\n",
            "line 4: admin.token_env: give only one of token and token_env",
        ),
        (
            "[paths.a]\nsource = \"rtsp://h/x\"\nkeyframe_cache = 300\n",
            "line 3: paths.a.keyframe_cache: 300: must be 0 to 256 MiB",
        ),
        (
            "[paths.a]\nsource = \"rtsp://h/x\"\nreconnect_min = 5\nreconnect_max = 2\n",
            "line 4: paths.a.reconnect_max: must not be less than reconnect_min",
        ),
        (
            "[paths.a]\nsource = \"rtsps://h/x\"\ntransport = \"http\"\nhttp_port = 80\n",
            "line 2: paths.a.source: rtsps:// back ends cannot be reached through an HTTP tunnel",
        ),
        (
            "[paths.a]\nsource = \"rtsp://h/x\"\nbackend_tls_fingerprints = [\"zz\"]\n",
            "line 3: paths.a.backend_tls_fingerprints: \"zz\"",
        ),
    ];
    for (text, want) in cases {
        let got = err(text).to_string();
        assert!(
            got.starts_with(want),
            "for\n{text}\ngot  {got}\nwant {want}..."
        );
    }
}

#[test]
fn serde_errors_name_line_and_key_too() {
    let e = err(
        "[server]\nrtsp_port = 8554\n\n[paths.a]\nsource = \"rtsp://h/x\"\ncolour = \"blue\"\n",
    );
    assert_eq!(e.line, Some(6));
    assert_eq!(e.key, "paths.a.colour");
    assert!(
        e.message.contains("unknown field `colour`"),
        "{}",
        e.message
    );
    let e = err("[sever]\nrtsp_port = 1\n");
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("unknown field `sever`"), "{}", e.message);
    let e = err("[server]\nrtsp_port = \"8554\"\n");
    assert_eq!((e.line, e.key.as_str()), (Some(2), "server.rtsp_port"));
    let e = err("[server\nrtsp_port = 1\n");
    assert_eq!(e.line, Some(1), "syntax: {e}");
    let e = err("[paths.a]\nsource = \"rtsp://h/x\"\non_demand = \"yes\"\n");
    assert_eq!((e.line, e.key.as_str()), (Some(3), "paths.a.on_demand"));
}

#[test]
fn file_errors_render_with_the_file() {
    let e = FileError {
        file: "/etc/p.toml".into(),
        error: ConfigError {
            line: Some(3),
            key: "paths.a.linger".into(),
            message: "bad".into(),
        },
    };
    assert_eq!(e.to_string(), "/etc/p.toml:3: paths.a.linger: bad");
}

#[test]
fn udp_only_and_admin_defaults() {
    let c = load_with(
        "[admin]\nlisten = \"9998\"\n[defaults]\ntransport = \"udp\"\n[paths.a]\nsource = \"rtsp://h/x\"\n",
        &[],
        &no_env,
    )
    .unwrap();
    assert_eq!(c.paths["a"].options.transport, PathTransport::Udp);
    assert_eq!(
        c.admin.unwrap().listen,
        "127.0.0.1:9998".parse().unwrap(),
        "loopback unless stated"
    );
}

#[test]
fn an_empty_file_is_valid() {
    let c = load_with("", &[], &no_env).unwrap();
    assert!(c.paths.is_empty() && c.urls.is_empty());
    assert_eq!(c.config_file.as_deref(), Some(Path::new("/etc/p.toml")));
}

#[test]
fn one_path_from_its_table() {
    let mut config = Config::default();
    config.defaults.linger = Duration::from_secs(4);
    let spec = parse_path(
        "cam/1",
        "source = \"rtsp://h/x\"\ntransport = \"tcp\"\n",
        &config,
    )
    .unwrap();
    assert_eq!(spec.options.transport, PathTransport::Tcp);
    assert_eq!(
        spec.options.linger,
        Duration::from_secs(4),
        "the running defaults"
    );
    let e = parse_path("cam", "source = \"rtsp://h/x\"\nlinger = -1\n", &config).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 2: paths.cam.linger: -1 s: must be 0 or more and at most 86400 seconds"
    );
    assert!(parse_path("a b", "source = \"rtsp://h/x\"", &config).is_err());
    assert!(parse_path("cam", "colour = 1", &config).is_err());
}

#[test]
fn trusted_proxies_from_the_file_and_the_command_line() {
    let text = "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"2001:db8::7\"]\n[paths.a]\nsource = \"rtsp://h/x\"\n";
    let c = load_with(text, &[], &no_env).expect("valid");
    assert!(c.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
    assert!(c
        .trusted_proxies
        .contains("::ffff:10.1.2.3".parse().unwrap()));
    assert!(c.trusted_proxies.contains("2001:db8::7".parse().unwrap()));
    assert!(!c.trusted_proxies.contains("11.0.0.1".parse().unwrap()));
    // The command line's list replaces the file's.
    let c = load_with(text, &["--trusted-proxy", "192.0.2.1"], &no_env).expect("valid");
    assert!(c.trusted_proxies.contains("192.0.2.1".parse().unwrap()));
    assert!(!c.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
    let e = err("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n");
    assert_eq!(e.key, "server.trusted_proxies");
    assert_eq!(e.line, Some(2));
}

#[test]
fn required_is_a_path_key_and_not_for_on_demand_paths() {
    let config = load_with(
        "[paths.a]\nsource = \"rtsp://h/a\"\nrequired = true\n[paths.b]\nsource = \"rtsp://h/b\"\n",
        &[],
        &no_env,
    )
    .expect("loads");
    assert!(config.paths["a"].required);
    assert!(!config.paths["b"].required);
    let mut other = config.paths["a"].clone();
    other.required = false;
    assert!(
        config.paths["a"].same_source(&other),
        "only readiness differs"
    );
    other.options.linger += Duration::from_secs(1);
    assert!(!config.paths["a"].same_source(&other));

    let e = err("[defaults]\nrequired = true\n").to_string();
    assert!(e.starts_with("line 2: defaults.required: "), "{e}");
    let e = file_error(load_with(
        "[defaults]\non_demand = true\n\n[paths.a]\nsource = \"rtsp://h/a\"\nrequired = true\n",
        &[],
        &no_env,
    ));
    assert_eq!(e.error.line, Some(4));
    assert_eq!(e.error.key, "paths.a.required");
    assert!(
        e.error.message.contains("cannot go with on_demand = true"),
        "{e}"
    );
    let config = Config::default();
    let e = parse_path(
        "a",
        "source = \"rtsp://h/a\"\non_demand = true\nrequired = true\n",
        &config,
    )
    .expect_err("the API refuses it too");
    assert_eq!(e.key, "paths.a.required");
}

#[test]
fn drain_timeout_in_server() {
    let config = load_with("[server]\ndrain_timeout = 12\n", &["--demo"], &no_env).expect("loads");
    assert_eq!(config.drain_timeout, Duration::from_secs(12));
    let config = load_with(
        "[server]\ndrain_timeout = 12\n",
        &["--demo", "--drain-timeout", "0"],
        &no_env,
    )
    .expect("loads");
    assert_eq!(
        config.drain_timeout,
        Duration::ZERO,
        "the command line wins"
    );
    let e = err("[server]\ndrain_timeout = -1\n").to_string();
    assert!(e.starts_with("line 2: server.drain_timeout: "), "{e}");
}

/// `[webrtc]`: listen turns it on, the command line's options go on top, and
/// bad values name their key.
#[test]
fn webrtc_section() {
    let text = "[webrtc]\nlisten = \"0.0.0.0:8889\"\nudp = \"0.0.0.0:8189\"\ncandidates = [\"203.0.113.7\"]\nmax_viewers_per_path = 7\nhttps = true\n";
    let c = load_with(text, &["--demo"], &no_env).expect("loads");
    let w = c.webrtc.expect("webrtc");
    assert_eq!(w.listen, Some("0.0.0.0:8889".parse().unwrap()));
    assert_eq!(w.candidates, vec!["203.0.113.7".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        (w.max_viewers_per_path, w.max_viewers),
        (7, crate::webrtc::DEFAULT_MAX_VIEWERS)
    );
    let c = load_with(text, &["--webrtc-udp", "127.0.0.1:9000", "--demo"], &no_env).unwrap();
    assert_eq!(c.webrtc.unwrap().udp, "127.0.0.1:9000".parse().unwrap());
    for (text, message) in [
        ("[webrtc]\nudp = \"0.0.0.0:1\"\n", "webrtc.listen: missing"),
        (
            "[webrtc]\nlisten = \"x\"\n",
            "line 2: webrtc.listen: \"x\" is not an address:port",
        ),
        (
            "[webrtc]\nlisten = \"0.0.0.0:1\"\ncandidates = [\"0.0.0.0\"]\n",
            "line 3: webrtc.candidates",
        ),
        (
            "[webrtc]\nlisten = \"0.0.0.0:1\"\nmax_viewers = 0\n",
            "line 3: webrtc.max_viewers: must be 1..100000",
        ),
    ] {
        let e = err(text).to_string();
        assert!(e.contains(message), "{e} should contain {message}");
    }
}

#[test]
fn a_table_overlays_only_the_keys_it_gives() {
    let base = SourceOptions::default();
    let mut o = base.clone();
    SourcePart::default().overlay(&mut o);
    assert_eq!(o, base, "an empty table changes nothing");

    // [defaults], then a path's own table on top of the result.
    let defaults = SourcePart {
        linger: Some(Duration::from_secs(5)),
        max_gap: Some(None),
        on_demand: Some(true),
        ..SourcePart::default()
    };
    let path = SourcePart {
        transport: Some(PathTransport::Tcp),
        linger: Some(Duration::ZERO),
        reconnect_min: Some(Duration::from_secs(60)),
        ..SourcePart::default()
    };
    let mut o = base.clone();
    defaults.overlay(&mut o);
    assert_eq!(o.linger, Duration::from_secs(5));
    assert_eq!(o.max_gap, None, "max_gap = 0 turns it off");
    assert!(o.on_demand);
    path.overlay(&mut o);
    assert_eq!(o.transport, PathTransport::Tcp);
    assert_eq!(o.linger, Duration::ZERO, "the path wins");
    assert!(o.on_demand, "kept from [defaults]");
    assert_eq!(o.response_timeout, base.response_timeout, "never given");
    assert_eq!(
        (o.reconnect_min, o.reconnect_max),
        (Duration::from_secs(60), Duration::from_secs(60)),
        "reconnect_max rises to reconnect_min"
    );
}
