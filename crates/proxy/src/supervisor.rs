//! The supervisor: the named streams the proxy pulls and the source task of each.
//!
//! It owns name → (stream, source handle). [`Supervisor::add`] creates a stream,
//! publishes it in the [`StreamRegistry`] the server looks streams up in and starts its
//! source; [`Supervisor::remove`] unpublishes it (new requests for it get 404), closes
//! its playing clients and shuts its source down gracefully (TEARDOWN) in a task of
//! its own; [`Supervisor::shutdown`] does that for all of them. Command-line streams
//! (`app.rs`) and REGISTER/DEREGISTER (`server/register.rs`) both go through it.
//!
//! The server's sessions of a removed stream that are not playing are the server's:
//! `ServerContext::remove_stream` closes them and then calls [`Supervisor::remove`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::info;

use crate::relay::{Stream, StreamRegistry};
use crate::source::{self, SourceHandle, SourceSettings};

/// How long a removed stream's source may take to TEARDOWN.
pub const REMOVE_GRACE: Duration = Duration::from_secs(3);

/// Where a stream comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A URL of the command line.
    CommandLine,
    /// A REGISTER from this address.
    Registered { by: IpAddr },
}

/// Why a stream could not be added.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddError {
    #[error("a stream named {0:?} already exists")]
    Duplicate(String),
    #[error("already {0} registered streams (the limit)")]
    TooManyRegistered(usize),
}

struct Entry {
    stream: Arc<Stream>,
    source: SourceHandle,
    origin: Origin,
    /// The back end's URL without credentials (for the admin port).
    url: String,
}

/// The streams that have a source, by name.
pub struct Supervisor {
    streams: Arc<StreamRegistry>,
    entries: Mutex<HashMap<String, Entry>>,
    max_registered: usize,
}

impl Supervisor {
    /// A supervisor publishing its streams in `streams`, with at most
    /// `max_registered` streams of [`Origin::Registered`].
    pub fn new(streams: Arc<StreamRegistry>, max_registered: usize) -> Supervisor {
        Supervisor {
            streams,
            entries: Mutex::new(HashMap::new()),
            max_registered,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registry the streams are published in.
    pub fn registry(&self) -> &Arc<StreamRegistry> {
        &self.streams
    }

    /// Creates stream `name` (keyframe cache of `cache_bytes`), publishes it and
    /// starts its source. Needs a tokio runtime.
    ///
    /// # Errors
    ///
    /// The name is taken (by any stream of the registry, the demo included), or the
    /// limit of registered streams is reached.
    pub fn add(
        &self,
        name: &str,
        cache_bytes: usize,
        settings: SourceSettings,
        origin: Origin,
    ) -> Result<Arc<Stream>, AddError> {
        let mut entries = self.lock();
        if matches!(origin, Origin::Registered { .. }) {
            let registered = self.count_registered(&entries);
            if registered >= self.max_registered {
                return Err(AddError::TooManyRegistered(registered));
            }
        }
        let stream = Stream::with_cache(name, cache_bytes);
        if !self.streams.insert(stream.clone()) {
            return Err(AddError::Duplicate(name.to_owned()));
        }
        let url = rtsp::url::redact(&settings.url);
        let source = source::spawn(stream.clone(), settings);
        entries.insert(
            name.to_owned(),
            Entry {
                stream: stream.clone(),
                source,
                origin,
                url,
            },
        );
        Ok(stream)
    }

    fn count_registered(&self, entries: &HashMap<String, Entry>) -> usize {
        entries
            .values()
            .filter(|e| matches!(e.origin, Origin::Registered { .. }))
            .count()
    }

    /// How many registered streams there are.
    pub fn registered(&self) -> usize {
        self.count_registered(&self.lock())
    }

    /// Whether another registered stream may be added now.
    pub fn registered_full(&self) -> bool {
        self.registered() >= self.max_registered
    }

    /// The origin of stream `name`, if the supervisor has it.
    pub fn origin(&self, name: &str) -> Option<Origin> {
        self.lock().get(name).map(|e| e.origin)
    }

    /// The back-end URL of stream `name`, credentials removed.
    pub fn source_url(&self, name: &str) -> Option<String> {
        self.lock().get(name).map(|e| e.url.clone())
    }

    /// Removes stream `name`: unpublished at once, its playing clients closed, its
    /// source shut down (TEARDOWN) in a task of its own. Returns the stream, or
    /// `None` if the supervisor has no such stream.
    pub fn remove(&self, name: &str) -> Option<Arc<Stream>> {
        let entry = self.lock().remove(name)?;
        self.streams.remove(name);
        entry.stream.close_all();
        tokio::spawn(entry.source.shutdown(REMOVE_GRACE));
        info!(stream = %name, "stream removed");
        Some(entry.stream)
    }

    /// The streams whose source stopped by itself (see [`SourceHandle::is_finished`]),
    /// for the caller to remove.
    pub fn finished(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.source.is_finished())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Stops every source (TEARDOWN, at most `within` in all) and closes every
    /// stream's clients.
    pub async fn shutdown(&self, within: Duration) {
        let entries: Vec<Entry> = self.lock().drain().map(|(_, e)| e).collect();
        let mut stops = Vec::new();
        for e in entries {
            e.stream.close_all();
            stops.push(tokio::spawn(e.source.shutdown(within)));
        }
        for s in stops {
            let _ = s.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn settings() -> SourceSettings {
        // Nothing listens on port 9 of loopback (discard): the source just retries.
        SourceSettings::from_config(&Config::default(), "rtsp://127.0.0.1:9/x", None)
    }

    #[tokio::test]
    async fn add_remove_and_limits() {
        let registry = Arc::new(StreamRegistry::new());
        let sup = Supervisor::new(registry.clone(), 2);
        let by = Origin::Registered {
            by: "127.0.0.1".parse().unwrap(),
        };
        sup.add("cli", 0, settings(), Origin::CommandLine)
            .expect("cli");
        assert_eq!(
            sup.add("cli", 0, settings(), by).err(),
            Some(AddError::Duplicate("cli".into()))
        );
        assert!(registry.insert(Stream::new("demo")));
        assert_eq!(
            sup.add("demo", 0, settings(), by).err(),
            Some(AddError::Duplicate("demo".into())),
            "names outside the supervisor count too"
        );
        sup.add("a", 0, settings(), by).expect("a");
        assert!(!sup.registered_full());
        sup.add("b", 0, settings(), by).expect("b");
        assert!(sup.registered_full());
        assert_eq!(
            sup.add("c", 0, settings(), by).err(),
            Some(AddError::TooManyRegistered(2))
        );
        assert_eq!(sup.registered(), 2, "command-line streams do not count");
        assert_eq!(sup.origin("a"), Some(by));
        assert_eq!(sup.origin("cli"), Some(Origin::CommandLine));
        assert!(sup.remove("a").is_some());
        assert!(registry.get("a").is_none(), "unpublished");
        assert!(sup.remove("a").is_none());
        assert!(sup.remove("demo").is_none(), "not the supervisor's");
        sup.add("c", 0, settings(), by).expect("room again");
        assert!(sup.finished().is_empty());
        sup.shutdown(Duration::from_millis(200)).await;
        assert!(sup.origin("c").is_none());
    }
}
