//! The path control API: a [`PathSpec`] (the value type, `path_spec.rs`)
//! applied to the running proxy by name with [`apply`] / [`remove`] (what a
//! config reload and the HTTP API call), and the list of paths ([`specs`]).
//!
//! Paths of [`Origin::Config`] are the file's (and the API's); a reload never
//! touches streams of another origin, and REGISTER/DEREGISTER only ever touch
//! [`Origin::Registered`] ones.

use tracing::info;

pub use crate::path_spec::{
    diff, name_error, Diff, PathSpec, PathTransport, SourceOptions, MAX_NAME_LEN,
};
use crate::server::ServerContext;
pub use crate::supervisor::PathInfo;
use crate::supervisor::{AddError, Origin};

/// What [`apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A new path, served at once.
    Added,
    /// The path existed with another spec: its clients were ended, its source
    /// replaced.
    Replaced,
    /// The path existed with this very spec: nothing was touched.
    Unchanged,
}

/// Why [`apply`] or [`remove`] refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{0}")]
    InvalidName(String),
    /// The name belongs to a stream of another origin (a command-line URL, a
    /// registered back end, the demo).
    #[error("a stream named {name:?} exists and is not a configured path ({origin})")]
    NotConfigured { name: String, origin: String },
    #[error(transparent)]
    Add(#[from] AddError),
}

/// Adds path `name` (origin `origin`, normally [`Origin::Config`]) or, if it exists
/// with another spec, replaces it (remove, then add); if it exists with this spec,
/// does nothing. Only paths of the same origin are replaced.
///
/// # Errors
///
/// A bad name, a stream of that name of another origin, or the add failed.
pub fn apply(
    ctx: &ServerContext,
    name: &str,
    spec: PathSpec,
    origin: Origin,
) -> Result<Applied, PathError> {
    if let Some(e) = name_error(name) {
        return Err(PathError::InvalidName(e));
    }
    let mut applied = Applied::Added;
    match ctx.supervisor.entry_spec(name) {
        Some((o, old)) if o == origin => {
            if old.as_ref() == Some(&spec) {
                return Ok(Applied::Unchanged);
            }
            if old.as_ref().is_some_and(|old| old.same_source(&spec)) {
                // Only what readiness waits for changed: the source goes on.
                ctx.supervisor.set_spec(name, spec);
                info!(stream = %name, "path updated (required)");
                return Ok(Applied::Unchanged);
            }
            ctx.remove_stream(name);
            applied = Applied::Replaced;
        }
        Some((o, _)) => {
            return Err(PathError::NotConfigured {
                name: name.to_owned(),
                origin: o.to_string(),
            })
        }
        None if ctx.streams.get(name).is_some() => {
            return Err(PathError::NotConfigured {
                name: name.to_owned(),
                origin: "built-in".into(),
            })
        }
        None => {}
    }
    let source = spec.redacted_source();
    ctx.supervisor.add_spec(name, spec, origin)?;
    info!(stream = %name, "path {} from {source}", match applied {
        Applied::Replaced => "replaced",
        _ => "added",
    });
    Ok(applied)
}

/// Removes path `name` of origin `origin`: new requests get 404, its clients are
/// ended, its source is shut down. `Ok(false)` if there is no such stream.
///
/// # Errors
///
/// The stream exists and has another origin.
pub fn remove(ctx: &ServerContext, name: &str, origin: Origin) -> Result<bool, PathError> {
    match ctx.supervisor.origin(name) {
        None => Ok(false),
        Some(o) if o == origin => Ok(ctx.remove_stream(name)),
        Some(o) => Err(PathError::NotConfigured {
            name: name.to_owned(),
            origin: o.to_string(),
        }),
    }
}

/// Every stream of the supervisor, by name. Use [`PathSpec::redacted_source`] to
/// show a source.
#[must_use]
pub fn specs(ctx: &ServerContext) -> Vec<PathInfo> {
    ctx.supervisor.specs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendTransport, Config};
    use rtsp::auth::Credentials;
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    fn spec(url: &str) -> PathSpec {
        Config::default().path_spec(url)
    }

    #[test]
    fn names() {
        for good in ["a", "front-door", "cams/front_1", "x.y~z", "A9"] {
            assert_eq!(name_error(good), None, "{good}");
        }
        for bad in [
            "",
            "a b",
            "a?b",
            "a#b",
            "caf\u{e9}",
            "/a",
            "a/",
            "a//b",
            "a/../b",
            "%41",
        ] {
            assert!(name_error(bad).is_some(), "{bad:?}");
        }
        assert!(name_error(&"a".repeat(201)).is_some());
        assert!(name_error("a b")
            .unwrap()
            .contains("cannot be in an RTSP URL path"));
    }

    #[test]
    fn command_line_options_become_the_spec_and_the_settings() {
        let config = Config {
            defaults: SourceOptions {
                transport: PathTransport::Http { port: 8000 },
                linger: Duration::from_secs(7),
                max_gap: None,
                credentials: Some(Credentials::new("u", "p")),
                ..SourceOptions::default()
            },
            ..Config::default()
        };
        let s = config.path_spec("rtsp://h/x");
        assert_eq!(s.options.transport, PathTransport::Http { port: 8000 });
        let settings = s.settings(None);
        assert_eq!(settings.transport, BackendTransport::Tcp);
        assert_eq!(
            settings.connector.http_tunnel.as_ref().map(|t| t.port),
            Some(8000)
        );
        assert_eq!(settings.linger, Duration::from_secs(7));
        assert_eq!(settings.max_gap, None);
        assert_eq!(settings.credentials, Some(Credentials::new("u", "p")));
        assert!(!settings.on_demand);

        let mut udp = spec("rtsp://h/x");
        assert_eq!(udp.options.transport, PathTransport::Auto);
        assert!(udp.settings(None).tcp_fallback);
        udp.options.transport = PathTransport::Udp;
        let s = udp.settings(None);
        assert_eq!(s.transport, BackendTransport::Udp);
        assert!(!s.tcp_fallback, "udp means UDP only");
        udp.options.on_demand = true;
        assert!(udp.settings(None).on_demand);
    }

    #[test]
    fn redacted_source_hides_the_password() {
        let s = spec("rtsp://admin:secret@cam/x");
        assert!(!s.redacted_source().contains("secret"));
        assert!(!format!("{:?}", s.options.credentials).contains("secret"));
    }

    #[test]
    fn diff_sorts_paths_out() {
        let mut old = BTreeMap::new();
        old.insert("a".to_owned(), spec("rtsp://h/a"));
        old.insert("b".to_owned(), spec("rtsp://h/b"));
        old.insert("d".to_owned(), spec("rtsp://h/d"));
        let mut new = old.clone();
        new.remove("d");
        new.get_mut("b").unwrap().options.linger = Duration::from_secs(9);
        new.insert("c".to_owned(), spec("rtsp://h/c"));
        let d = diff(&old, &new);
        assert_eq!(d.added, ["c"]);
        assert_eq!(d.changed, ["b"]);
        assert_eq!(d.removed, ["d"]);
        assert_eq!(d.unchanged, ["a"]);
        assert!(!d.is_empty());
        assert_eq!(
            d.to_string(),
            "added: c; changed: b; removed: d; unchanged: 1"
        );
        assert!(diff(&old, &old).is_empty());
    }

    #[tokio::test]
    async fn apply_adds_replaces_and_leaves_alone() {
        let registry = Arc::new(crate::relay::StreamRegistry::new());
        let mut ctx = ServerContext::new(registry.clone(), None, None, Duration::from_secs(60));
        ctx.supervisor = Arc::new(crate::supervisor::Supervisor::new(registry.clone(), 4));
        let a = spec("rtsp://127.0.0.1:9/a");
        assert_eq!(
            apply(&ctx, "a", a.clone(), Origin::Config),
            Ok(Applied::Added)
        );
        let first = registry.get("a").expect("served");
        assert_eq!(
            apply(&ctx, "a", a.clone(), Origin::Config),
            Ok(Applied::Unchanged)
        );
        assert!(
            Arc::ptr_eq(&first, &registry.get("a").unwrap()),
            "untouched"
        );
        let mut a2 = a.clone();
        a2.options.linger = Duration::from_secs(3);
        assert_eq!(
            apply(&ctx, "a", a2.clone(), Origin::Config),
            Ok(Applied::Replaced)
        );
        assert!(
            !Arc::ptr_eq(&first, &registry.get("a").unwrap()),
            "a new stream"
        );
        assert_eq!(specs(&ctx)[0].spec.as_ref(), Some(&a2));

        // Only `required` changes: the source and stream stay, the spec is kept
        // (readiness now waits for the path, which is down).
        let second = registry.get("a").unwrap();
        let mut a3 = a2.clone();
        a3.required = true;
        assert_eq!(
            apply(&ctx, "a", a3.clone(), Origin::Config),
            Ok(Applied::Unchanged)
        );
        assert!(
            Arc::ptr_eq(&second, &registry.get("a").unwrap()),
            "untouched"
        );
        assert_eq!(specs(&ctx)[0].spec.as_ref(), Some(&a3));
        assert_eq!(ctx.supervisor.required_down(), vec!["a".to_owned()]);

        ctx.supervisor
            .add_spec("cli", spec("rtsp://127.0.0.1:9/c"), Origin::CommandLine)
            .unwrap();
        assert!(matches!(
            apply(&ctx, "cli", a.clone(), Origin::Config),
            Err(PathError::NotConfigured { .. })
        ));
        assert!(matches!(
            remove(&ctx, "cli", Origin::Config),
            Err(PathError::NotConfigured { .. })
        ));
        assert!(matches!(
            apply(&ctx, "bad name", a.clone(), Origin::Config),
            Err(PathError::InvalidName(_))
        ));
        assert_eq!(remove(&ctx, "a", Origin::Config), Ok(true));
        assert!(registry.get("a").is_none());
        assert_eq!(remove(&ctx, "a", Origin::Config), Ok(false));
        ctx.supervisor.shutdown(Duration::from_millis(200)).await;
    }
}
