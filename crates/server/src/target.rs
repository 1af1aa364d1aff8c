//! What a request URL names: a stream (aggregate) or one track of it.
//!
//! Stream names may contain `/` (`-e cams/front`), so the whole path is tried as a
//! stream name first, then everything before the last `/` with the last segment as
//! the track (`trackN`, 1-based, as in the SDP we serve).

/// The object a request URL refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The whole server (`*`).
    Server,
    /// A stream, with an optional track index (0-based).
    Stream { name: String, track: Option<usize> },
}

/// The path of a request URI with scheme, authority, query and surrounding `/`
/// removed. `None` for a URI that is not an absolute rtsp/rtsps/http URL or a path.
pub fn request_path(uri: &str) -> Option<String> {
    let rest = if let Some(pos) = uri.find("://") {
        let scheme = &uri[..pos];
        if !["rtsp", "rtsps", "rtspu", "http", "https"]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scheme))
        {
            return None;
        }
        let after = &uri[pos + 3..];
        match after.find('/') {
            Some(slash) => &after[slash..],
            None => "",
        }
    } else if uri.starts_with('/') {
        uri
    } else {
        return None;
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    Some(rest.trim_matches('/').to_string())
}

/// Resolves a request URI against the known stream names.
pub fn resolve(uri: &str, is_stream: impl Fn(&str) -> bool) -> Option<Target> {
    if uri == "*" {
        return Some(Target::Server);
    }
    let path = request_path(uri)?;
    if is_stream(&path) {
        return Some(Target::Stream {
            name: path,
            track: None,
        });
    }
    let (stream, last) = path.rsplit_once('/')?;
    if !is_stream(stream) {
        return None;
    }
    let n: usize = last.strip_prefix("track")?.parse().ok()?;
    if n == 0 {
        return None;
    }
    Some(Target::Stream {
        name: stream.to_string(),
        track: Some(n - 1),
    })
}

/// The stream name in a URI that names an unknown track of a known stream, to tell
/// "404 unknown track" from "404 unknown stream" in logs. Purely informational.
pub fn stream_prefix(uri: &str, is_stream: impl Fn(&str) -> bool) -> Option<String> {
    let path = request_path(uri)?;
    let (stream, _) = path.rsplit_once('/')?;
    is_stream(stream).then(|| stream.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(n: &str) -> bool {
        n == "proxyStream" || n == "cams/front" || n == "proxyStream-1"
    }

    #[test]
    fn aggregate_and_track_urls() {
        let s = |name: &str, track| {
            Some(Target::Stream {
                name: name.into(),
                track,
            })
        };
        assert_eq!(
            resolve("rtsp://127.0.0.1:8554/proxyStream", known),
            s("proxyStream", None)
        );
        assert_eq!(
            resolve("rtsp://127.0.0.1:8554/proxyStream/", known),
            s("proxyStream", None)
        );
        assert_eq!(
            resolve("rtsp://h/proxyStream/track2", known),
            s("proxyStream", Some(1))
        );
        assert_eq!(
            resolve("rtsp://[::1]:8554/proxyStream-1/track1", known),
            s("proxyStream-1", Some(0))
        );
        assert_eq!(
            resolve("rtsp://h/cams/front/track1", known),
            s("cams/front", Some(0))
        );
        assert_eq!(resolve("rtsp://h/cams/front", known), s("cams/front", None));
        assert_eq!(
            resolve("RTSP://h/proxyStream?x=1", known),
            s("proxyStream", None)
        );
        assert_eq!(
            resolve("/proxyStream/track1", known),
            s("proxyStream", Some(0))
        );
        assert_eq!(resolve("*", known), Some(Target::Server));
    }

    #[test]
    fn unknown_things() {
        assert_eq!(resolve("rtsp://h/nosuch", known), None);
        assert_eq!(resolve("rtsp://h/proxyStream/track0", known), None);
        assert_eq!(resolve("rtsp://h/proxyStream/trackX", known), None);
        assert_eq!(resolve("rtsp://h/proxyStream/stream=0", known), None);
        assert_eq!(resolve("ftp://h/proxyStream", known), None);
        assert_eq!(resolve("proxyStream", known), None);
        assert_eq!(resolve("rtsp://h", known), None);
        assert_eq!(
            stream_prefix("rtsp://h/proxyStream/track9", known),
            Some("proxyStream".into())
        );
    }
}
