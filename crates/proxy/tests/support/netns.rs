//! [`NetPair`]: two network namespaces joined by a veth pair, for multicast
//! between processes (a host's loopback alone does not route multicast between
//! a sender and receivers that bind the same port).
//!
//! The test creates them itself (`ip netns add`, root only) and deletes them
//! when the guard drops, also when the test panics. Nothing outside them is
//! touched: the addresses (10.200.0.1/24 in the first, 10.200.0.2/24 in the
//! second) and the multicast routes (224.0.0.0/4 over the veth) exist only
//! inside. Processes run in a namespace either through `ip netns exec`
//! ([`super::BackendOpts::netns`]) or by being started from a thread that
//! entered it ([`NetPair::run_in`]): children and sockets inherit the
//! namespace of the thread that creates them.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Address of the first namespace's end of the veth pair.
pub const FIRST_ADDR: &str = "10.200.0.1";
/// Address of the second namespace's end.
pub const SECOND_ADDR: &str = "10.200.0.2";

/// Two namespaces joined by a veth pair. Deleted when dropped.
pub struct NetPair {
    /// The first namespace's name (`ip netns` name).
    pub first: String,
    /// The second namespace's name.
    pub second: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl NetPair {
    /// Creates the pair, or says why it cannot (not root, no `ip`, no
    /// namespace support): the caller skips its test then.
    pub fn create() -> Result<NetPair, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("network namespaces need root".into());
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let base = format!("rtsp-proxy-mc-{}-{n}", std::process::id());
        let pair = NetPair {
            first: format!("{base}a"),
            second: format!("{base}b"),
        };
        ip(&["netns", "add", &pair.first])?;
        // From here on, the guard deletes whatever was made.
        ip(&["netns", "add", &pair.second])?;
        ip(&[
            "link",
            "add",
            "mc0",
            "netns",
            &pair.first,
            "type",
            "veth",
            "peer",
            "name",
            "mc0",
            "netns",
            &pair.second,
        ])?;
        for (ns, addr) in [(&pair.first, FIRST_ADDR), (&pair.second, SECOND_ADDR)] {
            let cidr = format!("{addr}/24");
            for args in [
                &["link", "set", "lo", "up"][..],
                &["link", "set", "mc0", "up"],
                &["link", "set", "mc0", "multicast", "on"],
                &["addr", "add", cidr.as_str(), "dev", "mc0"],
                &["route", "add", "224.0.0.0/4", "dev", "mc0"],
            ] {
                let mut full = vec!["-n", ns.as_str()];
                full.extend_from_slice(args);
                ip(&full)?;
            }
        }
        Ok(pair)
    }

    /// Runs `f` on a thread that entered namespace `ns` (named like the
    /// calling thread, so that process logs keep the test's name): every
    /// process, socket and thread it starts lives there. Panics in `f` are
    /// passed on.
    pub fn run_in<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
        let name = std::thread::current().name().unwrap_or("netns").to_owned();
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn_scoped(scope, || {
                    enter(ns);
                    f()
                })
                .expect("spawn a thread");
            match handle.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

/// Moves the calling thread into namespace `ns`.
fn enter(ns: &str) {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // SAFETY: a valid descriptor of a network namespace, for this thread only.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
}

impl Drop for NetPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and with it the other.
        for ns in [&self.first, &self.second] {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("[e2e] {e}");
            }
        }
    }
}
