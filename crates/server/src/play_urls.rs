//! The URLs a served stream is played on, as the "Play this stream using the
//! URL" lines print them (at start-up and when a back end REGISTERs a stream).

use std::net::IpAddr;

/// The URLs a stream is served on, as printed in "Play this stream" lines: plain
/// RTSP on `port`, then RTSPS on `tls_port` (each left out when not served).
#[must_use]
pub fn play_urls(ip: IpAddr, port: Option<u16>, tls_port: Option<u16>, name: &str) -> Vec<String> {
    let mut urls: Vec<String> = port.map(|p| play_url(ip, p, name)).into_iter().collect();
    if let Some(p) = tls_port {
        let plain = play_url(ip, p, name);
        let tls = plain.replacen("rtsp://", "rtsps://", 1);
        // 322 is RTSPS's default port, as 554 is RTSP's.
        urls.push(match tls.strip_suffix(&format!("/{name}")) {
            Some(base) if p == rtsp::url::RTSPS_DEFAULT_PORT => {
                format!("{}/{name}", base.trim_end_matches(":322"))
            }
            _ => tls,
        });
    }
    urls
}

/// `rtsp://<ip>[:<port>]/<name>`: the port is left out when it is 554.
#[must_use]
pub fn play_url(ip: IpAddr, port: u16, name: &str) -> String {
    let host = match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    if port == 554 {
        format!("rtsp://{host}/{name}")
    } else {
        format!("rtsp://{host}:{port}/{name}")
    }
}
