//! Free ports for servers started by tests.
//!
//! The suite runs many test processes at once (cargo-nextest runs every test
//! in a process of its own): a port is reserved for the whole machine by a
//! lock on a file named after it in [`lock_dir`], held until the test process
//! exits, so two processes never hand out the same port.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Ports are drawn from here: below Linux's ephemeral range (32768-60999), so
/// the kernel does not hand them to the client sockets and server UDP sockets
/// that tests open meanwhile, which could otherwise take a port between
/// [`free_port`] returning it and the server binding it.
const FIRST: u16 = 20_000;
const LAST: u16 = 32_000;

/// Ports handed out by this test process: never given twice.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
/// The locks that reserve them from other processes, held until exit.
static LOCKS: Mutex<Vec<File>> = Mutex::new(Vec::new());
static RNG: Mutex<u64> = Mutex::new(0);

/// An even port `p` such that TCP `p` and UDP `p` and `p + 1` can be bound on
/// every interface right now, and that no other call in this process returned
/// (neither `p` nor `p + 1`), nor any other test process still running.
///
/// Use it for any server a test starts (proxy RTSP port, back end, restarting a
/// back end later on the same port is fine: the port stays reserved for the
/// test process). Ports are random so that test binaries run one after the
/// other, or a stale process of an earlier run, do not collide.
///
/// Panics if no free port is found after many attempts.
pub fn free_port() -> u16 {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..2_000 {
        let span = u64::from((LAST - FIRST) / 2);
        let offset = u16::try_from(next_random() % span).unwrap_or(0);
        let port = FIRST + offset * 2;
        if handed.contains(&port) || handed.contains(&(port + 1)) {
            continue;
        }
        let Some(lock) = reserve(port) else {
            continue;
        };
        if can_bind(port) {
            LOCKS.lock().unwrap_or_else(|e| e.into_inner()).push(lock);
            handed.insert(port);
            handed.insert(port + 1);
            return port;
        }
    }
    panic!("no free port found in {FIRST}..{LAST}");
}

/// Where the port locks are: one folder for every test process of the
/// machine (of every checkout, too).
fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("rtsp-proxy-test-ports")
}

/// An exclusive lock on `port`'s file (it covers `port + 1` too, since only
/// even ports are handed out), or None if another process holds it.
fn reserve(port: u16) -> Option<File> {
    let dir = lock_dir();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    let path = dir.join(port.to_string());
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    file.try_lock().ok().map(|()| file)
}

fn can_bind(port: u16) -> bool {
    let any = Ipv4Addr::UNSPECIFIED;
    TcpListener::bind((any, port)).is_ok()
        && UdpSocket::bind((any, port)).is_ok()
        && UdpSocket::bind((any, port + 1)).is_ok()
}

/// xorshift64*, seeded from the clock and the pid: good enough to spread ports.
fn next_random() -> u64 {
    let mut state = RNG.lock().unwrap_or_else(|e| e.into_inner());
    if *state == 0 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        *state = (nanos ^ (u64::from(std::process::id()) << 32)) | 1;
    }
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}
