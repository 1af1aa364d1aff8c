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
//!
//! [`path_spec`] is the path model the supervisor starts sources from.

pub mod path_spec;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::info;

use net::tls::{self, BackendTrust};
use path_spec::PathSpec;
use relay::{Stream, StreamRegistry};
use source::{SourceHandle, SourceSettings};
use tasks::Tasks;

/// One stream of the supervisor, as listed.
#[derive(Clone, Debug)]
pub struct PathInfo {
    pub name: String,
    pub origin: Origin,
    /// `None` for a stream added without a spec.
    pub spec: Option<PathSpec>,
}

/// Default bound on the number of streams registered with REGISTER at once
/// (`--max-registered`).
pub const DEFAULT_MAX_REGISTERED: usize = 64;

/// How long a removed stream's source may take to TEARDOWN.
pub const REMOVE_GRACE: Duration = Duration::from_secs(3);

/// Where a stream comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A URL of the command line.
    CommandLine,
    /// A REGISTER from this address.
    Registered { by: IpAddr },
    /// A path of the config file (or one added at run time by name, as the
    /// config file does): what a reload may add, replace and remove.
    Config,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::CommandLine => f.write_str("command line"),
            Origin::Registered { by } => write!(f, "registered by {by}"),
            Origin::Config => f.write_str("config"),
        }
    }
}

/// Why a stream could not be added.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddError {
    #[error("a stream named {0:?} already exists")]
    Duplicate(String),
    #[error("already {0} registered streams (the limit)")]
    TooManyRegistered(usize),
    #[error("back-end TLS: {0}")]
    Tls(String),
}

struct Entry {
    stream: Arc<Stream>,
    source: SourceHandle,
    origin: Origin,
    /// The back end's URL without credentials (for the admin port).
    url: String,
    /// What the stream was made from, when it was made from a spec.
    spec: Option<PathSpec>,
}

/// The streams that have a source, by name.
pub struct Supervisor {
    streams: Arc<StreamRegistry>,
    entries: Mutex<HashMap<String, Entry>>,
    max_registered: usize,
    /// The command line's back-end trust and its client configuration (built once
    /// at start-up), used by every spec with that same trust.
    backend_tls: Mutex<Option<(BackendTrust, Arc<rustls::ClientConfig>)>>,
    /// The owner of the sources' tasks (and of their shutdowns).
    tasks: Tasks,
}

impl Supervisor {
    /// A supervisor publishing its streams in `streams`, with at most
    /// `max_registered` streams of [`Origin::Registered`].
    pub fn new(streams: Arc<StreamRegistry>, max_registered: usize) -> Supervisor {
        Supervisor {
            streams,
            entries: Mutex::new(HashMap::new()),
            max_registered,
            backend_tls: Mutex::new(None),
            tasks: Tasks::new(),
        }
    }

    /// The supervisor with its sources' tasks owned by `tasks`.
    #[must_use]
    pub fn with_tasks(mut self, tasks: Tasks) -> Supervisor {
        self.tasks = tasks;
        self
    }

    /// The back-end TLS configuration built at start-up for `trust`: specs with
    /// this trust share it, others get their own.
    pub fn set_backend_tls(&self, trust: BackendTrust, config: Arc<rustls::ClientConfig>) {
        *self.backend_tls.lock().unwrap_or_else(|e| e.into_inner()) = Some((trust, config));
    }

    /// The TLS client configuration for back ends verified with `trust`.
    fn tls_for(&self, trust: &BackendTrust) -> Result<Option<Arc<rustls::ClientConfig>>, AddError> {
        if let Some((t, c)) = &*self.backend_tls.lock().unwrap_or_else(|e| e.into_inner()) {
            if t == trust {
                return Ok(Some(c.clone()));
            }
        }
        if *trust == BackendTrust::default() {
            // Built lazily by the source's connector when it is an rtsps:// URL.
            return Ok(None);
        }
        tls::client_config(trust)
            .map(Some)
            .map_err(|e| AddError::Tls(e.to_string()))
    }

    /// Creates stream `name` from `spec` (see [`Supervisor::add`]); the spec is
    /// kept, for [`Supervisor::specs`] and for telling a changed spec.
    ///
    /// # Errors
    ///
    /// As [`Supervisor::add`], and a back-end TLS configuration that cannot be
    /// built.
    pub fn add_spec(
        &self,
        name: &str,
        spec: PathSpec,
        origin: Origin,
    ) -> Result<Arc<Stream>, AddError> {
        let tls = self.tls_for(&spec.options.backend_tls)?;
        let settings = spec.settings(tls);
        self.add_inner(
            name,
            spec.options.keyframe_cache_bytes,
            settings,
            origin,
            Some(spec),
        )
    }

    /// The origin and spec of stream `name`, if the supervisor has it.
    pub fn entry_spec(&self, name: &str) -> Option<(Origin, Option<PathSpec>)> {
        self.lock().get(name).map(|e| (e.origin, e.spec.clone()))
    }

    /// Replaces the kept spec of stream `name` without touching its source (a
    /// change [`PathSpec::same_source`] allows).
    pub fn set_spec(&self, name: &str, spec: PathSpec) {
        if let Some(e) = self.lock().get_mut(name) {
            e.spec = Some(spec);
        }
    }

    /// The paths marked `required` whose back end is not up (sorted): while
    /// there is one, the proxy is not ready.
    pub fn required_down(&self) -> Vec<String> {
        let mut down: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.spec.as_ref().is_some_and(|s| s.required))
            .filter(|(_, e)| !e.stream.source_state().is_up())
            .map(|(n, _)| n.clone())
            .collect();
        down.sort();
        down
    }

    /// Every stream of the supervisor, sorted by name.
    pub fn specs(&self) -> Vec<PathInfo> {
        let mut v: Vec<PathInfo> = self
            .lock()
            .iter()
            .map(|(name, e)| PathInfo {
                name: name.clone(),
                origin: e.origin,
                spec: e.spec.clone(),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
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
        self.add_inner(name, cache_bytes, settings, origin, None)
    }

    fn add_inner(
        &self,
        name: &str,
        cache_bytes: usize,
        settings: SourceSettings,
        origin: Origin,
        spec: Option<PathSpec>,
    ) -> Result<Arc<Stream>, AddError> {
        let mut entries = self.lock();
        if matches!(origin, Origin::Registered { .. }) {
            let registered = self.count_registered(&entries);
            if registered >= self.max_registered {
                return Err(AddError::TooManyRegistered(registered));
            }
        }
        let stream = Stream::with_cache(name, cache_bytes);
        stream.set_on_demand(settings.on_demand);
        stream.set_tasks(&self.tasks);
        if !self.streams.insert(stream.clone()) {
            return Err(AddError::Duplicate(name.to_owned()));
        }
        let url = rtsp::url::redact(&settings.url);
        let source = source::spawn(stream.clone(), settings, &self.tasks);
        entries.insert(
            name.to_owned(),
            Entry {
                stream: stream.clone(),
                source,
                origin,
                url,
                spec,
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
        self.tasks.track(entry.source.shutdown(REMOVE_GRACE));
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
            stops.push(self.tasks.track(e.source.shutdown(within)));
        }
        for s in stops {
            let _ = s.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path_spec::SourceOptions;

    fn settings() -> SourceSettings {
        // Nothing listens on port 9 of loopback (discard): the source just retries.
        PathSpec::new("rtsp://127.0.0.1:9/x", SourceOptions::default()).settings(None)
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
