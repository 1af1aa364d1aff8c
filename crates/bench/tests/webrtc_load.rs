//! The WebRTC load mode end to end: `rtsp-bench run --transport udp,webrtc`
//! with a few viewers starts the synthetic source and the real rtsp-proxy
//! (with `--webrtc-*` through `{webrtc}`), the WHEP viewers connect (ICE,
//! DTLS-SRTP) and count media; the RTSP UDP run beside them likewise.
//!
//! Needs the proxy binary next to rtsp-bench (`cargo test --workspace`
//! builds both; alone: `cargo build -p rtsp-proxy` first).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn figures(report: &Path) -> Vec<(String, f64)> {
    std::fs::read_to_string(report)
        .unwrap_or_else(|e| panic!("{}: {e}", report.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

fn get(f: &[(String, f64)], key: &str) -> f64 {
    f.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {key} in the report: {f:?}"))
}

#[test]
fn webrtc_viewers_receive_the_stream_beside_rtsp_udp_clients() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_rtsp-bench"));
    let proxy = bench.with_file_name("rtsp-proxy");
    assert!(
        proxy.exists(),
        "{} missing: build it (cargo build -p rtsp-proxy)",
        proxy.display()
    );
    let logs = std::env::temp_dir().join(format!("rtsp-bench-webrtc-{}", std::process::id()));
    std::fs::create_dir_all(&logs).unwrap();
    let started = Instant::now();
    let mut child = Command::new(&bench)
        .args(["run", "--transport", "udp,webrtc", "--clients", "3"])
        .args(["--warmup", "4", "--duration", "3", "--stagger-ms", "50"])
        .args(["--proxy-cpu", "0", "--bench-cpu", "0"])
        .arg("--logs")
        .arg(&logs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rtsp-bench runs");
    // Bounded: kill it (it stops its own children) if it hangs.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rtsp-bench run did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "rtsp-bench run failed:\n{text}");
    for tr in ["udp", "webrtc"] {
        let f = figures(&logs.join(format!("load-rtsp-proxy-{tr}-3-r1.report")));
        assert_eq!(get(&f, "clients_ok"), 3.0, "{tr}: {text}");
        // 3 s of a 4 Mbit/s stream (about 420 packets/s) for each viewer,
        // with a wide margin for a loaded machine.
        assert!(get(&f, "packets") > 3.0 * 300.0, "{tr}: {f:?}");
        assert!(
            get(&f, "frame_lat_us_n") > 0.0,
            "{tr}: no frame latency: {f:?}"
        );
        assert_eq!(
            get(&f, "no_probe"),
            0.0,
            "{tr}: packets without a probe: {f:?}"
        );
    }
    assert!(text.contains("webrtc"), "{text}");
    let _ = std::fs::remove_dir_all(&logs);
    eprintln!("took {:?}", started.elapsed());
}
