//! Tests of what ships: the static binary (`scripts/build-static.sh`) needs no
//! shared library, plays the demo and resolves host names; the Debian package
//! (`scripts/package-deb.sh`) installs, verifies, keeps a changed conffile and
//! leaves nothing behind once purged; the container image (`scripts/image.sh`,
//! `Containerfile`) is built and, where podman can run containers, serves a
//! back end with the host's network.
//!
//! The static binary is built once per run of this file, in its own target
//! directory, `target/<host triple>/<profile>/`: `release` by default,
//! `static-check` (no optimisation) when `scripts/test.sh` runs it
//! (`STATIC_PROFILE`).
//! `scripts/test.sh` starts that same build in the background before the
//! tests run: the call here then waits for it (cargo's lock on that
//! directory) and finds it done.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use support::*;

const PROBE: Duration = Duration::from_secs(30);
const START: Duration = Duration::from_secs(30);

/// Runs `cmd`, returning its output; panics if it cannot start.
fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{cmd:?}: cannot run: {e}"))
}

/// Runs `cmd` and returns its stdout; panics with its stderr if it fails.
fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The static binary, built once (`scripts/build-static.sh`).
fn static_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let started = std::time::Instant::now();
        let out = run_ok(Command::new(repo_file("scripts/build-static.sh")).current_dir(REPO_ROOT));
        let path = PathBuf::from(out.trim());
        eprintln!(
            "measured: static build {:.0} s -> {} ({} MB)",
            started.elapsed().as_secs_f64(),
            path.display(),
            std::fs::metadata(&path).expect("binary").len() / 1_000_000
        );
        path
    })
}

/// Starts `binary -p <port> --http-port 0 <args>` and waits for its first
/// "Play this stream" line.
fn start_binary(label: &str, binary: &Path, port: u16, args: &[&str]) -> Proc {
    let mut cmd = Command::new(binary);
    cmd.env_remove("RUST_LOG")
        .args(["-p", &port.to_string(), "--http-port", "0"])
        .args(args);
    let proc = Proc::spawn(label, &mut cmd).unwrap_or_else(|e| panic!("{e}"));
    proc.wait_for_line(PLAY_LINE, START)
        .unwrap_or_else(|e| panic!("{e}"));
    proc
}

#[test]
fn static_binary_needs_no_library_plays_the_demo_and_resolves_names() {
    let binary = static_binary();
    let file = run_ok(Command::new("file").arg("-L").arg(binary));
    assert!(
        file.contains("statically linked") || file.contains("static-pie linked"),
        "{file}"
    );
    let ldd = run(Command::new("ldd").arg(binary));
    let ldd_text = format!(
        "{}{}",
        String::from_utf8_lossy(&ldd.stdout),
        String::from_utf8_lossy(&ldd.stderr)
    );
    assert!(
        ldd_text.contains("not a dynamic executable") || ldd_text.contains("statically linked"),
        "ldd: {ldd_text}"
    );

    let origin_port = free_port();
    let _origin = start_binary("static-origin", binary, origin_port, &["--demo"]);
    let demo = format!("rtsp://127.0.0.1:{origin_port}/demo");
    let streams = ffprobe_streams(&demo, "tcp", PROBE).expect("ffprobe plays the demo");
    assert_eq!(streams[0].codec_name, "h264");
    // A back end named by host name: glibc's resolver, linked in, with no NSS
    // library to load.
    let edge_port = free_port();
    let by_name = format!("rtsp://localhost:{origin_port}/demo");
    let _edge = start_binary("static-edge", binary, edge_port, &["-t", &by_name]);
    let relayed = format!("rtsp://127.0.0.1:{edge_port}/proxyStream");
    let streams = ffprobe_streams(&relayed, "tcp", PROBE).expect("ffprobe plays the edge");
    assert_eq!(streams[0].codec_name, "h264");
}

/// Every file, link and directory under the directories a package may touch.
fn system_files() -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            out.insert(path.clone());
            if is_dir {
                walk(&path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    for dir in [
        "/etc",
        "/usr/bin",
        "/usr/sbin",
        "/usr/lib/systemd",
        "/usr/share/man/man1",
        "/usr/share/doc",
        "/var/lib/systemd",
        "/run/systemd",
    ] {
        walk(Path::new(dir), &mut out);
    }
    out
}

fn dpkg(args: &[&str]) -> String {
    run_ok(
        Command::new("dpkg")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn package_status() -> String {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Abbrev}", "rtsp-proxy"]));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Purges the package if the test stops half-way (a panic), so that the next
/// run starts from a machine without it.
struct PurgeOnDrop;

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("dpkg")
                .args(["--purge", "rtsp-proxy"])
                .status();
        }
    }
}

const CONFFILE: &str = "/etc/rtsp-proxy/rtsp-proxy.toml";

#[test]
fn debian_package_installs_verifies_and_purges_cleanly() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the Debian package test installs a package: run as root (CI does)");
        return;
    }
    if !have("dpkg") {
        eprintln!("SKIPPED: dpkg not found (not a Debian system)");
        return;
    }
    let status = package_status();
    if !status.is_empty() && !status.starts_with("un") {
        eprintln!("SKIPPED: a package rtsp-proxy is installed here ({status}); not touching it");
        return;
    }
    static_binary();
    let deb = run_ok(Command::new(repo_file("scripts/package-deb.sh")).arg("--no-build"));
    let deb = PathBuf::from(REPO_ROOT).join(deb.trim());
    assert!(deb.is_file(), "{}", deb.display());
    let info = run_ok(Command::new("dpkg-deb").arg("--info").arg(&deb));
    eprintln!("{info}");

    let before = system_files();
    dpkg(&["-i", deb.to_str().unwrap()]);
    let _purge_on_failure = PurgeOnDrop;
    let installed = system_files();

    // The binary, from /usr/bin.
    let version = run_ok(Command::new("/usr/bin/rtsp-proxy").arg("--version"));
    assert!(
        version.starts_with(&format!("rtsp-proxy {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    // The conffiles, in place and registered as such.
    let listed = dpkg(&["-L", "rtsp-proxy"]);
    for file in [
        "/usr/bin/rtsp-proxy",
        CONFFILE,
        "/etc/default/rtsp-proxy",
        "/usr/share/doc/rtsp-proxy/copyright",
    ] {
        assert!(listed.lines().any(|l| l == file), "{file} in {listed}");
    }
    let status = run_ok(Command::new("dpkg").args(["-s", "rtsp-proxy"]));
    let conffile_lines: Vec<&str> = status
        .lines()
        .skip_while(|l| !l.starts_with("Conffiles:"))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .collect();
    for file in [CONFFILE, "/etc/default/rtsp-proxy"] {
        assert!(
            conffile_lines.iter().any(|l| l.trim().starts_with(file)),
            "{file} is a conffile: {status}"
        );
    }
    let mode = |p: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).expect(p).permissions().mode() & 0o777
    };
    assert_eq!(
        mode("/etc/default/rtsp-proxy"),
        0o600,
        "it may hold passwords"
    );
    // The unit, installed and enabled.
    let unit = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(|d| Path::new(d).join("rtsp-proxy.service"))
        .find(|p| p.is_file())
        .expect("rtsp-proxy.service installed");
    let man = listed
        .lines()
        .find(|l| l.starts_with("/usr/share/man/man1/rtsp-proxy.1"))
        .expect("the man page");
    assert!(Path::new(man).is_file(), "{man}");
    let added: Vec<&PathBuf> = installed.difference(&before).collect();
    eprintln!("installed: {added:?}");
    assert!(
        added
            .iter()
            .any(|p| p.starts_with("/etc/systemd/system/multi-user.target.wants")),
        "the unit is enabled: {added:?}"
    );
    if have("systemd-analyze") {
        let out = run(Command::new("systemd-analyze").arg("verify").arg(&unit));
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "systemd-analyze verify {}: {}\n{stderr}",
            unit.display(),
            out.status
        );
        assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
    } else {
        eprintln!("SKIPPED: systemd-analyze verify (install systemd to run it)");
    }
    // The installed configuration runs, and waits for a stream.
    let admin = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new("/usr/bin/rtsp-proxy");
    cmd.args(["--config", CONFFILE, "--admin", &admin])
        .args(["-p", &free_port().to_string()]);
    let proxy = Proc::spawn("installed", &mut cmd).expect("spawn");
    proxy
        .wait_for_line("No stream yet: add a [paths.NAME] table to", START)
        .expect("the installed proxy waits for a path");
    drop(proxy);

    // Upgrade (the same package again): a changed conffile stays.
    let mine = format!(
        "{}\n# changed by the administrator\n",
        std::fs::read_to_string(CONFFILE).unwrap()
    );
    std::fs::write(CONFFILE, &mine).unwrap();
    dpkg(&["-i", deb.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(CONFFILE).unwrap(), mine);

    // Remove: the program goes, the configuration stays.
    dpkg(&["-r", "rtsp-proxy"]);
    assert!(!Path::new("/usr/bin/rtsp-proxy").exists());
    assert!(!unit.exists());
    assert_eq!(std::fs::read_to_string(CONFFILE).unwrap(), mine);
    // Purge: nothing of it is left.
    dpkg(&["--purge", "rtsp-proxy"]);
    let after = system_files();
    let stray: Vec<&PathBuf> = after.difference(&before).collect();
    let lost: Vec<&PathBuf> = before.difference(&after).collect();
    assert!(
        stray.is_empty() && lost.is_empty(),
        "left behind: {stray:?}; removed: {lost:?}"
    );
    assert!(package_status().starts_with("un") || package_status().is_empty());
}

/// Removes the test's container (and the image it ran) when dropped.
struct Container {
    name: String,
    image: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.name])
            .output();
        let _ = Command::new("buildah").args(["rmi", &self.image]).output();
    }
}

#[test]
fn container_image_builds_and_serves_with_the_host_network() {
    if !have("buildah") {
        eprintln!("SKIPPED: the container image: buildah is not installed");
        return;
    }
    static_binary();
    let image = run_ok(Command::new(repo_file("scripts/image.sh")).arg("--no-build"));
    let image = image.trim().to_owned();
    let container = Container {
        name: format!("rtsp-proxy-test-{}", std::process::id()),
        image: image.clone(),
    };
    let inspect = if have("podman") {
        run_ok(Command::new("podman").args(["image", "inspect", &image]))
    } else {
        run_ok(Command::new("buildah").args(["inspect", "--type", "image", &image]))
    };
    let inspect: serde_json::Value = serde_json::from_str(&inspect).expect("inspect JSON");
    let inspect = inspect.get(0).unwrap_or(&inspect);
    let config = inspect
        .get("Config")
        .or_else(|| inspect.pointer("/OCIv1/config"))
        .expect("the image's config");
    eprintln!("image config: {config}");
    assert_eq!(config["User"], "65532:65532", "not root");
    assert!(config["Volumes"].get("/etc/rtsp-proxy").is_some());
    assert!(config["ExposedPorts"].get("8554/tcp").is_some());
    assert!(config["ExposedPorts"].get("9997/tcp").is_some());
    assert_eq!(config["Entrypoint"][0], "/usr/bin/rtsp-proxy");
    if let Some(size) = inspect["Size"].as_u64() {
        eprintln!("measured: image size {} MB", size / 1_000_000);
    }

    // A back end named by host name, the config in the volume.
    let backend = Backend::start(BackendOpts::codecs("h264"));
    let source = backend.url().replacen("127.0.0.1", "localhost", 1);
    let rtsp_port = free_port();
    let admin_port = free_port();
    let dir = scratch_dir("container-config");
    std::fs::write(
        dir.join("rtsp-proxy.toml"),
        format!(
            "[server]\nrtsp_port = {rtsp_port}\nhttp_port = 0\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n[paths.cam]\nsource = \"{source}\"\n"
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            dir.join("rtsp-proxy.toml"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let volume = format!("{}:/etc/rtsp-proxy:ro", dir.display());
    let url = format!("rtsp://127.0.0.1:{rtsp_port}/cam");
    let refused = if have("podman") {
        let started = run(Command::new("podman").args([
            "run",
            "-d",
            "--name",
            &container.name,
            "--network=host",
            "-v",
            &volume,
            &image,
        ]));
        (!started.status.success()).then(|| {
            format!(
                "podman cannot run containers on this machine: `podman run -d --network=host ...` {}: {}",
                started.status,
                String::from_utf8_lossy(&started.stderr).trim()
            )
        })
    } else {
        Some("podman is not installed".to_owned())
    };
    if let Some(why) = refused {
        eprintln!("SKIPPED: running the image in a container: {why}");
        // The image's file system, user and command still run, chrooted by
        // buildah (no container runtime).
        let command: Vec<String> = [&config["Entrypoint"], &config["Cmd"]]
            .iter()
            .flat_map(|v| v.as_array().expect("Entrypoint and Cmd").iter())
            .map(|w| w.as_str().unwrap().to_owned())
            .collect();
        run_chrooted(&image, &volume, &command, &url);
        return;
    }
    let mut logs = Command::new("podman");
    logs.args(["logs", "-f", &container.name]);
    let logs = Proc::spawn("container", &mut logs).expect("podman logs");
    logs.wait_for_line(PLAY_LINE, START)
        .unwrap_or_else(|e| panic!("the container serves: {e}"));
    let streams = ffprobe_streams(&url, "tcp", PROBE).expect("ffprobe plays the container");
    assert_eq!(streams[0].codec_name, "h264");
    // podman stop: SIGTERM, and the proxy exits 0.
    run_ok(Command::new("podman").args(["stop", "-t", "60", &container.name]));
    let code = run_ok(Command::new("podman").args([
        "inspect",
        "--format",
        "{{.State.ExitCode}}",
        &container.name,
    ]));
    assert_eq!(code.trim(), "0", "exit status after SIGTERM");
}

/// A `buildah run --isolation chroot` of the image: stopped with SIGTERM (which
/// buildah passes on) and its working container removed when dropped.
struct Chrooted {
    proc: Proc,
    container: String,
}

impl Drop for Chrooted {
    fn drop(&mut self) {
        let _ = self.proc.signal(Signal::Term);
        let _ = self.proc.wait_timeout(Duration::from_secs(10));
        let _ = Command::new("buildah")
            .args(["rm", &self.container])
            .output();
    }
}

/// Runs the image's `command` with buildah's chroot isolation and the host's
/// network, the configuration mounted as in a container, and plays `url`.
fn run_chrooted(image: &str, volume: &str, command: &[String], url: &str) {
    let container = run_ok(Command::new("buildah").args(["from", image]))
        .trim()
        .to_owned();
    let mut cmd = Command::new("buildah");
    cmd.args(["run", "--isolation", "chroot", "--network", "host"])
        .args(["-v", volume, &container, "--"])
        .args(command);
    let chrooted = Chrooted {
        proc: Proc::spawn("chrooted-image", &mut cmd).expect("buildah run"),
        container,
    };
    chrooted
        .proc
        .wait_for_line(PLAY_LINE, START)
        .unwrap_or_else(|e| panic!("the image's command serves: {e}"));
    let streams = ffprobe_streams(url, "tcp", PROBE).expect("ffprobe plays the chrooted image");
    assert_eq!(streams[0].codec_name, "h264");
    eprintln!("the image's file system and command ran chrooted by buildah and played");
}
