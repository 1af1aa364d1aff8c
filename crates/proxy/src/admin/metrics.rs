//! `/metrics`: the Prometheus (OpenMetrics) text of one scrape, made by a
//! `prometheus-client` collector over the streams' snapshots taken at scrape
//! time and the process figures of `/proc/self`.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::relay::{ClientTransport, StreamSnapshot};
use crate::webrtc::http::PathViewers;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What `/proc/self` says about the process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Process {
    pub resident_bytes: u64,
    pub open_fds: u64,
    pub cpu_seconds: f64,
    pub start_time_seconds: f64,
}

impl Process {
    /// Read from `/proc/self` (None where there is no such thing).
    pub fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command (which may hold spaces) in parentheses.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state): utime 14, stime 15, starttime 22, rss 24.
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        let cpu_seconds = (field(14)? + field(15)?) as f64 / ticks;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
        let start_time_seconds = boot as f64 + field(22)? as f64 / ticks;
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        Some(Process {
            resident_bytes: field(24)? * page,
            open_fds,
            cpu_seconds,
            start_time_seconds,
        })
    }
}

/// One scrape's figures.
#[derive(Debug)]
struct Scrape {
    paths: Vec<StreamSnapshot>,
    process: Option<Process>,
    /// WebRTC viewers' figures per path (none without `--webrtc-listen`).
    webrtc: Vec<(String, PathViewers)>,
}

/// The text of one scrape.
pub fn render(paths: Vec<StreamSnapshot>, process: Option<Process>) -> String {
    render_with_webrtc(paths, process, Vec::new())
}

/// The text of one scrape, with the WebRTC viewers' figures per path.
pub fn render_with_webrtc(
    mut paths: Vec<StreamSnapshot>,
    process: Option<Process>,
    mut webrtc: Vec<(String, PathViewers)>,
) -> String {
    paths.sort_by(|a, b| a.name.cmp(&b.name));
    webrtc.sort_by(|a, b| a.0.cmp(&b.0));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        paths,
        process,
        webrtc,
    }));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

type PathValue = fn(&StreamSnapshot) -> u64;

type WebRtcValue = fn(&PathViewers) -> u64;

impl Scrape {
    /// The WebRTC viewers' counters per path (their drops are in
    /// `rtsp_proxy_path_client_packets_dropped`, their count in
    /// `rtsp_proxy_path_clients{transport="webrtc"}`).
    fn encode_webrtc(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        if self.webrtc.is_empty() {
            return Ok(());
        }
        let counters: [(&str, &str, WebRtcValue); 7] = [
            (
                "rtsp_proxy_webrtc_bytes_sent",
                "RTP bytes sent to WebRTC viewers (before SRTP; retransmissions not counted)",
                |w| w.counters.bytes,
            ),
            (
                "rtsp_proxy_webrtc_packets_sent",
                "RTP packets sent to WebRTC viewers (after H.264 re-fragmentation)",
                |w| w.counters.packets,
            ),
            (
                "rtsp_proxy_webrtc_nacks",
                "NACKs from WebRTC viewers (answered from the per-track send history)",
                |w| w.counters.nacks,
            ),
            (
                "rtsp_proxy_webrtc_plis",
                "Picture loss indications from WebRTC viewers (never passed to the camera)",
                |w| w.counters.plis,
            ),
            (
                "rtsp_proxy_webrtc_resent_packets",
                "RTP packets resent to WebRTC viewers on their NACKs",
                |w| w.counters.resent,
            ),
            (
                "rtsp_proxy_webrtc_keyframe_replays",
                "Keyframe requests of WebRTC viewers answered with the cached keyframe (at most one a second per viewer)",
                |w| w.counters.keyframe_replays,
            ),
            (
                "rtsp_proxy_webrtc_firs",
                "Full intra requests from WebRTC viewers (never passed to the camera)",
                |w| w.counters.firs,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (path, w) in &self.webrtc {
                let labels = [("path", path.as_str())];
                ConstCounter::new(value(w)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        self.encode_webrtc(&mut encoder)?;
        let gauges: [(&str, &str, PathValue); 1] = [(
            "rtsp_proxy_path_up",
            "1 while the back end's session is established (described), else 0",
            |s| u64::from(s.state.is_up()),
        )];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for s in &self.paths {
                let labels = [("path", s.name.as_str())];
                ConstGauge::new(value(s) as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "rtsp_proxy_path_clients",
                "Clients playing the path, by how their media goes",
                None,
                MetricType::Gauge,
            )?;
            for s in &self.paths {
                for t in ClientTransport::ALL {
                    let n = s.clients.iter().filter(|c| c.transport == t).count();
                    let labels = [("path", s.name.as_str()), ("transport", t.as_str())];
                    ConstGauge::new(n as i64).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        // Counter names get their `_total` from the encoder.
        let counters: [(&str, &str, PathValue); 8] = [
            (
                "rtsp_proxy_path_bytes_received",
                "RTP bytes received from the back end",
                |s| s.bytes_in,
            ),
            (
                "rtsp_proxy_path_packets_received",
                "RTP packets received from the back end",
                |s| s.packets_in,
            ),
            (
                "rtsp_proxy_path_bytes_sent",
                "RTP bytes relayed to clients (each client and track counted; before the drops of slow clients)",
                |s| s.bytes_out,
            ),
            (
                "rtsp_proxy_path_packets_sent",
                "RTP packets relayed to clients (each client and track counted)",
                |s| s.packets_out,
            ),
            (
                "rtsp_proxy_path_packets_lost",
                "RTP packets the back end sent that never arrived (sequence gaps)",
                |s| s.packets_lost,
            ),
            (
                "rtsp_proxy_path_reconnects",
                "Back-end sessions lost after they were established",
                |s| s.reconnects,
            ),
            (
                "rtsp_proxy_client_packets_dropped",
                "Packets dropped for the path's clients (full queues, refused UDP sends)",
                |s| s.client_drops,
            ),
            (
                "rtsp_proxy_path_client_sessions",
                "Clients that started playing the path (PLAYs)",
                |s| s.plays,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for s in &self.paths {
                let labels = [("path", s.name.as_str())];
                ConstCounter::new(value(s)).encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(p) = &self.process {
            let gauges = [
                (
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes",
                    p.resident_bytes as f64,
                ),
                (
                    "process_open_fds",
                    "Open file descriptors",
                    p.open_fds as f64,
                ),
                (
                    "process_start_time_seconds",
                    "Start time of the process since the Unix epoch in seconds",
                    p.start_time_seconds,
                ),
            ];
            for (name, help, v) in gauges {
                let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(v).encode(family)?;
            }
            let family = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(p.cpu_seconds).encode(family)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::{ClientSnapshot, SourceState};
    use std::time::SystemTime;

    fn snapshot(name: &str, state: SourceState) -> StreamSnapshot {
        StreamSnapshot {
            name: name.into(),
            state,
            presentation: None,
            packets_in: 10,
            bytes_in: 12_000,
            packets_out: 20,
            bytes_out: 24_000,
            packets_lost: 3,
            reconnects: 1,
            client_drops: 7,
            plays: 2,
            clients: vec![],
        }
    }

    #[test]
    fn metrics_text_for_a_known_state() {
        let mut cam = snapshot("cam", SourceState::Playing);
        let client = |transport| ClientSnapshot {
            addr: "127.0.0.1:5000".parse().unwrap(),
            transport,
            since: SystemTime::UNIX_EPOCH,
            dropped: 0,
        };
        cam.clients = vec![
            client(ClientTransport::Udp),
            client(ClientTransport::Tcp),
            client(ClientTransport::Tcp),
        ];
        let down = snapshot("down", SourceState::Down);
        let text = render(
            vec![down, cam],
            Some(Process {
                resident_bytes: 4096,
                open_fds: 9,
                cpu_seconds: 1.5,
                start_time_seconds: 1_700_000_000.0,
            }),
        );
        for line in [
            "# TYPE rtsp_proxy_path_up gauge",
            "rtsp_proxy_path_up{path=\"cam\"} 1",
            "rtsp_proxy_path_up{path=\"down\"} 0",
            "rtsp_proxy_path_clients{path=\"cam\",transport=\"udp\"} 1",
            "rtsp_proxy_path_clients{path=\"cam\",transport=\"tcp\"} 2",
            "rtsp_proxy_path_clients{path=\"cam\",transport=\"tls\"} 0",
            "rtsp_proxy_path_clients{path=\"down\",transport=\"http\"} 0",
            "# TYPE rtsp_proxy_path_bytes_received counter",
            "rtsp_proxy_path_bytes_received_total{path=\"cam\"} 12000",
            "rtsp_proxy_path_bytes_sent_total{path=\"cam\"} 24000",
            "rtsp_proxy_path_packets_lost_total{path=\"cam\"} 3",
            "rtsp_proxy_path_reconnects_total{path=\"down\"} 1",
            "rtsp_proxy_client_packets_dropped_total{path=\"cam\"} 7",
            "process_resident_memory_bytes 4096.0",
            "process_open_fds 9.0",
            "process_cpu_seconds_total 1.5",
            "process_start_time_seconds 1700000000.0",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        // Paths in name order.
        let cam_at = text.find("path_up{path=\"cam\"}").unwrap();
        assert!(cam_at < text.find("path_up{path=\"down\"}").unwrap());
    }

    #[test]
    fn process_figures_from_proc() {
        let p = Process::read().expect("/proc/self");
        assert!(p.resident_bytes > 0 && p.open_fds > 0, "{p:?}");
        assert!(p.start_time_seconds > 1_600_000_000.0, "{p:?}");
    }
}
