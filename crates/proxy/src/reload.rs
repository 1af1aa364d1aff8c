//! Config-file reload: on SIGHUP, and when the file's content changes (polled
//! every second by path, so an editor's atomic save, a new file renamed over the
//! old one, is seen too). The file is read and validated as at start-up; a bad
//! file is refused (the running configuration stays, the error names file, line
//! and key). A good one is diffed against the last one applied ([`paths::diff`]):
//! only added, changed and removed paths are touched ([`paths::apply`],
//! [`paths::remove`]); server settings that cannot change live are named in one
//! log line as needing a restart.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, error, info, warn};

use crate::config::{Config, CurrentConfig};
use crate::paths;
use crate::server::ServerContext;
use crate::supervisor::Origin;

/// How often the file is looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What one reload did.
#[derive(Debug)]
pub enum Outcome {
    /// The file is not valid: nothing changed.
    Refused(crate::config::file::LoadError),
    /// Applied: the paths' diff, the command-line streams restarted because
    /// their defaults changed, and the settings that need a restart.
    Applied {
        diff: paths::Diff,
        restarted: Vec<String>,
        restart: Vec<&'static str>,
        failed: Vec<String>,
    },
}

/// The settings of `new` that differ from `old` and cannot change while running.
#[must_use]
pub fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut check = |differs: bool, name: &'static str| {
        if differs {
            v.push(name);
        }
    };
    check(old.rtsp_port != new.rtsp_port, "rtsp_port");
    check(old.bind_addresses != new.bind_addresses, "bind");
    check(old.http_port != new.http_port, "http_port");
    check(
        old.tls != new.tls,
        "TLS (tls_cert, tls_key, tls_port, tls_only)",
    );
    check(old.client_users != new.client_users, "client_users");
    check(
        old.client_basic_in_clear != new.client_basic_in_clear,
        "client_basic",
    );
    check(old.register != new.register, "register");
    check(old.register_users != new.register_users, "register_users");
    check(old.max_registered != new.max_registered, "max_registered");
    check(old.register_allow != new.register_allow, "register_allow");
    check(old.demo != new.demo, "demo");
    check(old.admin != new.admin, "admin");
    check(old.verbosity != new.verbosity, "verbosity");
    check(old.drain_timeout != new.drain_timeout, "drain_timeout");
    v
}

/// Reads `file` again (with the command line in force on top) and applies
/// what changed: the file's paths by their diff, and the command-line streams
/// whose settings changed with `[defaults]` are restarted. On success the
/// configuration in force (`current`, which REGISTER and the admin API read)
/// takes the new path defaults and paths; the settings that need a restart
/// keep their running values.
pub fn reload(ctx: &ServerContext, file: &Path, current: &CurrentConfig) -> Outcome {
    let old = current.get();
    let new = match crate::config::file::load(file, "rtsp-proxy", &old.command_line) {
        Ok(c) => c,
        Err(e) => {
            error!("config reload refused, the running configuration stays: {e}");
            return Outcome::Refused(e);
        }
    };
    let restart = needs_restart(&old, &new);
    if !restart.is_empty() {
        warn!(
            "config reload: {} changed in {}; that takes effect after a restart (the running values stay)",
            restart.join(", "),
            file.display()
        );
    }
    let mut new = new;
    let diff = paths::diff(&old.paths, &new.paths);
    let mut failed = Vec::new();
    for name in &diff.removed {
        if let Err(e) = paths::remove(ctx, name, Origin::Config) {
            warn!(stream = %name, "config reload: not removed: {e}");
            failed.push(name.clone());
        }
    }
    for name in diff.added.iter().chain(&diff.changed) {
        if let Err(e) = paths::apply(ctx, name, new.paths[name].clone(), Origin::Config) {
            warn!(stream = %name, "config reload: path not applied: {e}");
            failed.push(name.clone());
            // Not running: the next reload tries it again.
            new.paths.remove(name);
        }
    }
    let restarted = restart_command_line_streams(ctx, &new, &mut failed);
    let mut paths_restarted = diff.changed.clone();
    paths_restarted.extend(restarted.iter().cloned());
    // In force before it is said: whoever acts on these lines (a REGISTER or
    // an API PUT right after) builds from the new settings.
    let mut running = (*old).clone();
    running.defaults = new.defaults;
    running.paths = new.paths;
    current.set(running);
    info!("config reloaded from {}: {diff}", file.display());
    if !paths_restarted.is_empty() {
        info!(
            "config reload: restarted (their settings changed): {}",
            paths_restarted.join(", ")
        );
    }
    Outcome::Applied {
        diff,
        restarted,
        restart,
        failed,
    }
}

/// Restarts every command-line stream whose spec under `new` (its defaults:
/// `[defaults]` with the command line on top) differs from the running one;
/// returns their names. Those that cannot be restarted go to `failed`.
fn restart_command_line_streams(
    ctx: &ServerContext,
    new: &Config,
    failed: &mut Vec<String>,
) -> Vec<String> {
    let mut restarted = Vec::new();
    for (url, name) in new.urls.iter().zip(new.stream_names()) {
        let spec = new.path_spec(url);
        match ctx.supervisor.entry_spec(&name) {
            Some((Origin::CommandLine, Some(running))) if running != spec => {}
            _ => continue,
        }
        match paths::apply(ctx, &name, spec, Origin::CommandLine) {
            Ok(_) => restarted.push(name),
            Err(e) => {
                warn!(stream = %name, "config reload: command-line stream not restarted: {e}");
                failed.push(name);
            }
        }
    }
    restarted
}

/// A cheap fingerprint of the file's content (`None`: cannot be read now).
fn fingerprint(file: &Path) -> Option<u64> {
    let bytes = std::fs::read(file).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

/// Watches `file` (SIGHUP, content changes) for the life of the proxy, and
/// keeps `current` up to date.
pub async fn watch(ctx: Arc<ServerContext>, file: PathBuf, current: Arc<CurrentConfig>) {
    let mut seen = fingerprint(&file);
    #[cfg(unix)]
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!("cannot watch SIGHUP: {e}; the config file is still reloaded when it changes");
            None
        }
    };
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let hup_recv = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup_recv = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = hup_recv => {
                info!("SIGHUP: reloading {}", file.display());
                seen = fingerprint(&file);
                reload(&ctx, &file, &current);
            }
            _ = tick.tick() => {
                let now = fingerprint(&file);
                if now.is_some() && now != seen {
                    debug!("{} changed", file.display());
                    seen = now;
                    reload(&ctx, &file, &current);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::LoadError;

    #[test]
    fn restart_settings_are_named() {
        let old = Config::default();
        let mut new = old.clone();
        assert!(needs_restart(&old, &new).is_empty());
        new.rtsp_port = 9000;
        new.defaults.linger = Duration::from_secs(9);
        new.bind_addresses.clear();
        assert_eq!(needs_restart(&old, &new), ["rtsp_port", "bind"]);
    }

    #[tokio::test]
    async fn reload_applies_the_diff_and_refuses_a_bad_file() {
        let dir = std::env::temp_dir().join(format!("rtsp-proxy-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.toml");
        let write = |text: &str| std::fs::write(&file, text).unwrap();
        let path = |n: &str| format!("[paths.{n}]\nsource = \"rtsp://127.0.0.1:9/{n}\"\n");
        write(&format!("{}{}{}", path("a"), path("b"), path("d")));
        let args = vec!["--config".to_owned(), file.display().to_string()];
        let current =
            CurrentConfig::new(crate::config::file::load(&file, "rtsp-proxy", &args).unwrap());

        let registry = Arc::new(crate::relay::StreamRegistry::new());
        let mut ctx = ServerContext::new(registry.clone(), None, None, Duration::from_secs(60));
        ctx.supervisor = Arc::new(crate::supervisor::Supervisor::new(registry.clone(), 4));
        for (n, s) in &current.get().paths {
            ctx.supervisor
                .add_spec(n, s.clone(), Origin::Config)
                .unwrap();
        }
        let a = registry.get("a").unwrap();
        let b = registry.get("b").unwrap();

        write(&format!(
            "{}{}linger = 5\n{}",
            path("a"),
            path("b"),
            path("c")
        ));
        match reload(&ctx, &file, &current) {
            Outcome::Applied {
                diff,
                restart,
                failed,
                ..
            } => {
                assert_eq!(diff.added, ["c"]);
                assert_eq!(diff.changed, ["b"]);
                assert_eq!(diff.removed, ["d"]);
                assert_eq!(diff.unchanged, ["a"]);
                assert!(restart.is_empty() && failed.is_empty());
            }
            o => panic!("{o:?}"),
        }
        assert!(Arc::ptr_eq(&a, &registry.get("a").unwrap()), "a untouched");
        assert!(!Arc::ptr_eq(&b, &registry.get("b").unwrap()), "b replaced");
        assert!(registry.get("c").is_some());
        assert!(registry.get("d").is_none());

        write("[paths.a]\nsource = \"rtsp://127.0.0.1:9/a\"\nlinger = -3\n");
        match reload(&ctx, &file, &current) {
            Outcome::Refused(LoadError::File(e)) => {
                assert_eq!(e.file, file);
                assert_eq!(
                    (e.error.line, e.error.key.as_str()),
                    (Some(3), "paths.a.linger")
                );
                assert_eq!(
                    e.to_string(),
                    format!(
                        "{}:3: paths.a.linger: -3 s: must be 0 or more and at most 86400 seconds",
                        file.display()
                    )
                );
            }
            o => panic!("{o:?}"),
        }
        assert!(registry.get("c").is_some(), "old config kept");

        write("[server]\nrtsp_port = 9999\n");
        match reload(&ctx, &file, &current) {
            Outcome::Applied { diff, restart, .. } => {
                assert_eq!(restart, ["rtsp_port"]);
                assert_eq!(diff.removed, ["a", "b", "c"]);
            }
            o => panic!("{o:?}"),
        }
        assert!(registry.all().is_empty());
        ctx.supervisor.shutdown(Duration::from_millis(200)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_defaults_edit_restarts_the_command_line_streams_it_changes() {
        let dir =
            std::env::temp_dir().join(format!("rtsp-proxy-reload-defaults-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.toml");
        let write = |text: &str| std::fs::write(&file, text).unwrap();
        write("[defaults]\nlinger = 2\n");
        // Two command-line URLs; --response-timeout on the command line wins
        // over the file.
        let args: Vec<String> = [
            "--config",
            &file.display().to_string(),
            "--response-timeout",
            "7",
            "rtsp://127.0.0.1:9/a",
            "rtsp://127.0.0.1:9/b",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let current =
            CurrentConfig::new(crate::config::file::load(&file, "rtsp-proxy", &args).unwrap());
        let registry = Arc::new(crate::relay::StreamRegistry::new());
        let mut ctx = ServerContext::new(registry.clone(), None, None, Duration::from_secs(60));
        ctx.supervisor = Arc::new(crate::supervisor::Supervisor::new(registry.clone(), 4));
        let start = current.get();
        for (url, name) in start.urls.iter().zip(start.stream_names()) {
            ctx.supervisor
                .add_spec(&name, start.path_spec(url), Origin::CommandLine)
                .unwrap();
        }
        let first = registry.get("proxyStream-1").unwrap();

        // A key the command line sets: nothing to restart.
        write("[defaults]\nlinger = 2\nresponse_timeout = 3\n");
        match reload(&ctx, &file, &current) {
            Outcome::Applied { restarted, .. } => assert!(restarted.is_empty(), "{restarted:?}"),
            o => panic!("{o:?}"),
        }
        assert!(Arc::ptr_eq(&first, &registry.get("proxyStream-1").unwrap()));
        assert_eq!(
            current.get().defaults.response_timeout,
            Duration::from_secs(7)
        );

        // A key it does not: both streams restart with it, and it is in force.
        write("[defaults]\nlinger = 5\nkeyframe_cache = 1\n");
        match reload(&ctx, &file, &current) {
            Outcome::Applied {
                restarted, failed, ..
            } => {
                assert_eq!(restarted, ["proxyStream-1", "proxyStream-2"]);
                assert!(failed.is_empty());
            }
            o => panic!("{o:?}"),
        }
        assert!(!Arc::ptr_eq(
            &first,
            &registry.get("proxyStream-1").unwrap()
        ));
        let now = current.get();
        assert_eq!(now.defaults.linger, Duration::from_secs(5));
        assert_eq!(now.defaults.keyframe_cache_bytes, 1 << 20);
        let running = ctx
            .supervisor
            .entry_spec("proxyStream-2")
            .unwrap()
            .1
            .unwrap();
        assert_eq!(running.options.linger, Duration::from_secs(5));
        assert_eq!(running.options.response_timeout, Duration::from_secs(7));
        ctx.supervisor.shutdown(Duration::from_millis(200)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
