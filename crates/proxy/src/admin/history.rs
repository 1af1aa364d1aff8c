//! Bitrates: the byte counters of every stream read once a second; the rate is
//! taken over the last [`RATE_WINDOW`], and one sample per [`HISTORY_INTERVAL`]
//! is kept for [`HISTORY_LEN`] of them (10 minutes) per path, so that the
//! dashboard's chart has data at first load. Bounded: a few hundred bytes per
//! path, and paths that are gone are forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::relay::StreamRegistry;

/// How often the counters are read.
pub const TICK: Duration = Duration::from_secs(1);
/// The bitrate shown is the average over this long.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);
/// One history sample per this long...
pub const HISTORY_INTERVAL: Duration = Duration::from_secs(5);
/// ...and this many of them (10 minutes).
pub const HISTORY_LEN: usize = 120;

/// Byte counters read at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub at: Instant,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// A history point: Unix time (s) and bits/s in and out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    pub t: u64,
    pub bps_in: u64,
    pub bps_out: u64,
}

/// Bits per second in and out between two readings (0 when no time passed;
/// a counter that went back, a re-created stream, counts as 0).
pub fn bitrate(older: &Reading, newer: &Reading) -> (u64, u64) {
    let secs = newer.at.saturating_duration_since(older.at).as_secs_f64();
    if secs <= 0.0 {
        return (0, 0);
    }
    let rate = |a: u64, b: u64| (b.saturating_sub(a) as f64 * 8.0 / secs).round() as u64;
    (
        rate(older.bytes_in, newer.bytes_in),
        rate(older.bytes_out, newer.bytes_out),
    )
}

#[derive(Debug, Default)]
struct PathHistory {
    /// The readings of the last [`RATE_WINDOW`] (and one older).
    recent: VecDeque<Reading>,
    samples: VecDeque<Sample>,
    last_sample: Option<Instant>,
}

impl PathHistory {
    fn record(&mut self, r: Reading, wall: SystemTime) {
        // Keep one reading at least RATE_WINDOW old, to measure over the window.
        while self.recent.len() >= 2
            && r.at.saturating_duration_since(self.recent[1].at) >= RATE_WINDOW
        {
            self.recent.pop_front();
        }
        self.recent.push_back(r);
        let due = self
            .last_sample
            .is_none_or(|at| r.at.saturating_duration_since(at) + TICK / 2 >= HISTORY_INTERVAL);
        if due && self.recent.len() >= 2 {
            let (bps_in, bps_out) = self.rate();
            let t = wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if self.samples.len() >= HISTORY_LEN {
                self.samples.pop_front();
            }
            self.samples.push_back(Sample { t, bps_in, bps_out });
            self.last_sample = Some(r.at);
        }
    }

    fn rate(&self) -> (u64, u64) {
        match (self.recent.front(), self.recent.back()) {
            (Some(a), Some(b)) => bitrate(a, b),
            _ => (0, 0),
        }
    }
}

/// Bitrates and history of every path.
#[derive(Debug, Default)]
pub struct History {
    paths: Mutex<HashMap<String, PathHistory>>,
}

impl History {
    pub fn new() -> Arc<History> {
        Arc::new(History::default())
    }

    /// Records a reading of `name`'s counters.
    pub fn record(&self, name: &str, r: Reading, wall: SystemTime) {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        paths.entry(name.to_owned()).or_default().record(r, wall);
    }

    /// Forgets the paths not in `keep`.
    pub fn retain(&self, keep: &[String]) {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        paths.retain(|n, _| keep.contains(n));
    }

    /// The current bitrates (bits/s in, out) of `name`.
    pub fn rate(&self, name: &str) -> (u64, u64) {
        let paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        paths.get(name).map_or((0, 0), PathHistory::rate)
    }

    /// The kept samples of `name`, oldest first.
    pub fn samples(&self, name: &str) -> Vec<Sample> {
        let paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        paths
            .get(name)
            .map(|p| p.samples.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Reads every stream's counters once.
    pub fn sample_all(&self, streams: &StreamRegistry, now: Instant, wall: SystemTime) {
        let all = streams.all();
        let mut names = Vec::with_capacity(all.len());
        for s in all {
            let stats = s.stats();
            self.record(
                s.name(),
                Reading {
                    at: now,
                    bytes_in: stats.bytes_in,
                    bytes_out: stats.bytes_out,
                },
                wall,
            );
            names.push(s.name().to_owned());
        }
        self.retain(&names);
    }
}

/// Samples `streams` every [`TICK`] until aborted.
pub async fn run_sampler(history: Arc<History>, streams: Arc<StreamRegistry>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        history.sample_all(&streams, Instant::now(), SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(base: Instant, secs: u64, bytes_in: u64, bytes_out: u64) -> Reading {
        Reading {
            at: base + Duration::from_secs(secs),
            bytes_in,
            bytes_out,
        }
    }

    #[test]
    fn bitrate_over_the_window() {
        let t0 = Instant::now();
        let a = reading(t0, 0, 1_000, 10_000);
        let b = reading(t0, 2, 251_000, 2_010_000);
        assert_eq!(bitrate(&a, &b), (1_000_000, 8_000_000));
        assert_eq!(bitrate(&a, &a), (0, 0), "no time passed");
        assert_eq!(
            bitrate(&b, &reading(t0, 3, 0, 0)),
            (0, 0),
            "counter went back"
        );

        // 125 kB/s in, 250 kB/s out for 20 s: 1 Mbit/s and 2 Mbit/s, measured
        // over the last 5 s; one history sample per 5 s, bounded.
        let h = History::default();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        for s in 0..=20u64 {
            h.record("p", reading(t0, s, s * 125_000, s * 250_000), wall);
        }
        assert_eq!(h.rate("p"), (1_000_000, 2_000_000));
        let samples = h.samples("p");
        assert_eq!(samples.len(), 4, "{samples:?}");
        assert!(samples
            .iter()
            .all(|s| s.bps_in == 1_000_000 && s.t == 1_000));
        {
            let paths = h.paths.lock().unwrap();
            assert!(paths["p"].recent.len() <= 6);
        }
        // A rate change shows within the window.
        h.record("p", reading(t0, 21, 20 * 125_000, 20 * 250_000), wall);
        let (r_in, _) = h.rate("p");
        assert!(r_in < 1_000_000 && r_in > 0, "{r_in}");
        for s in 22..2_000u64 {
            h.record("p", reading(t0, s, 0, 0), wall);
        }
        assert_eq!(h.samples("p").len(), HISTORY_LEN);
        h.retain(&[]);
        assert!(h.samples("p").is_empty());
        assert_eq!(h.rate("unknown"), (0, 0));
    }
}
