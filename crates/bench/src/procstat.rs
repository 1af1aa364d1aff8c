//! Reading a process's CPU time and memory from /proc.

use std::fs;

/// CPU time of a process (all its threads, including those that exited), in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CpuTicks {
    /// User time.
    pub utime: u64,
    /// System time.
    pub stime: u64,
}

impl CpuTicks {
    /// User + system.
    pub fn total(&self) -> u64 {
        self.utime + self.stime
    }
}

/// Parses `utime` and `stime` (fields 14 and 15) of a `/proc/<pid>/stat` line.
/// The command name (field 2) is in parentheses and may hold spaces and
/// parentheses itself, so fields are counted after the *last* `)`.
pub fn parse_stat(line: &str) -> Option<CpuTicks> {
    let after = &line[line.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    // After ')' the first field is field 3 (state); utime is field 14.
    let utime = fields.nth(11)?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some(CpuTicks { utime, stime })
}

/// CPU ticks of process `pid` (`/proc/<pid>/stat`).
pub fn process_cpu(pid: u32) -> Option<CpuTicks> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU ticks of thread `tid` of process `pid`.
pub fn thread_cpu(pid: u32, tid: u32) -> Option<CpuTicks> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?)
}

/// Nanoseconds on CPU of each live thread of `pid`, by thread id.
pub fn thread_schedstats(pid: u32) -> Vec<(u32, u64)> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut v: Vec<(u32, u64)> = dir
        .flatten()
        .filter_map(|e| {
            let tid = e.file_name().to_str()?.parse().ok()?;
            let ns = parse_schedstat(&fs::read_to_string(e.path().join("schedstat")).ok()?)?;
            Some((tid, ns))
        })
        .collect();
    v.sort_unstable();
    v
}

/// CPU ns spent between two [`thread_schedstats`] samples, or `None` when a
/// thread of the first sample is gone (its last slice is unknown: use ticks).
pub fn schedstat_delta(before: &[(u32, u64)], after: &[(u32, u64)]) -> Option<u64> {
    let mut sum = 0u64;
    for &(tid, ns) in before {
        let (_, later) = after.iter().find(|(t, _)| *t == tid)?;
        sum += later.saturating_sub(ns);
    }
    for &(tid, ns) in after {
        if !before.iter().any(|(t, _)| *t == tid) {
            sum += ns; // started during the window
        }
    }
    Some(sum)
}

/// Nanoseconds on CPU of one thread (`/proc/<pid>/task/<tid>/schedstat`).
pub fn thread_schedstat_ns(pid: u32, tid: u32) -> Option<u64> {
    parse_schedstat(&fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?)
}

/// First field of a schedstat line: time on CPU, ns.
pub fn parse_schedstat(s: &str) -> Option<u64> {
    s.split_ascii_whitespace().next()?.parse().ok()
}

/// Parses the `VmRSS:` line of `/proc/<pid>/status`, in KiB.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident set size of `pid`, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    parse_vm_rss_kib(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// Ticks of one CPU from `/proc/stat` (`cpuN` line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CoreTicks {
    /// user + nice + system + irq + softirq (guest time is inside user).
    pub busy: u64,
    /// Time the hypervisor gave to others while this CPU wanted to run.
    pub steal: u64,
    /// Everything (busy, idle, iowait, steal).
    pub total: u64,
}

impl CoreTicks {
    /// Busy and steal shares between two samples.
    pub fn shares_since(&self, before: &CoreTicks) -> (f64, f64) {
        let total = self.total.saturating_sub(before.total) as f64;
        if total <= 0.0 {
            return (f64::NAN, f64::NAN);
        }
        (
            self.busy.saturating_sub(before.busy) as f64 / total,
            self.steal.saturating_sub(before.steal) as f64 / total,
        )
    }
}

/// Parses the `cpuN` line of `/proc/stat`.
pub fn parse_cpu_line(stat: &str, cpu: usize) -> Option<CoreTicks> {
    let name = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_ascii_whitespace().next() == Some(name.as_str()))?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    let steal = at(7);
    Some(CoreTicks {
        busy,
        steal,
        total: busy + at(3) + at(4) + steal,
    })
}

/// Ticks of CPU `cpu`.
pub fn cpu_busy(cpu: usize) -> Option<CoreTicks> {
    parse_cpu_line(&fs::read_to_string("/proc/stat").ok()?, cpu)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The calling thread's id.
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parentheses_in_the_name() {
        let line = "4242 (rtsp (proxy) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    731 249 0 0 20 0 5 0 123456 200000000 3000 18446744073709551615 \
                    1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(line),
            Some(CpuTicks {
                utime: 731,
                stime: 249
            })
        );
        assert_eq!(parse_stat(line).unwrap().total(), 980);
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn own_process() {
        let pid = std::process::id();
        assert!(process_cpu(pid).is_some());
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(thread_cpu(pid, gettid()).is_some());
    }

    #[test]
    fn status_and_cpu_lines() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss_kib(status), Some(5120));
        assert_eq!(parse_vm_rss_kib("Name: x\n"), None);
        let stat =
            "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 1 4 50 2 1 1 0 0 0\ncpu1 5 0 6 50 0 0 0 0 0 0\n";
        let c0 = parse_cpu_line(stat, 0).unwrap();
        assert_eq!((c0.busy, c0.steal, c0.total), (12, 0, 64));
        let stat2 = "cpu0 10 0 10 100 0 0 5 5 0 0\n";
        let c = parse_cpu_line(stat2, 0).unwrap();
        assert_eq!((c.busy, c.steal, c.total), (25, 5, 130));
        let later = CoreTicks {
            busy: 35,
            steal: 10,
            total: 150,
        };
        assert_eq!(later.shares_since(&c), (0.5, 0.25));
        assert_eq!(parse_cpu_line(stat, 1).unwrap().busy, 11);
        assert_eq!(parse_cpu_line(stat, 2), None);
        assert_eq!(parse_schedstat("123456 789 10\n"), Some(123456));
        let before = [(1, 100), (2, 50)];
        assert_eq!(
            schedstat_delta(&before, &[(1, 150), (2, 60), (3, 5)]),
            Some(65)
        );
        assert_eq!(schedstat_delta(&before, &[(1, 150)]), None);
        assert!(!thread_schedstats(std::process::id()).is_empty());
    }
}
