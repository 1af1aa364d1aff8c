//! Liveness and readiness, for orchestrators' probes: `GET /healthz` (the
//! process serves: always 200) and `GET /readyz` (200 once the listeners are
//! bound and the configuration loaded, while no path marked `required` waits
//! for its back end; 503 before that, and from the start of a drain on). Both
//! are open (no admin token): probes carry none.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::supervisor::Supervisor;

/// Where the proxy's life stands, as readiness sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// The ports and streams are being set up.
    Starting = 0,
    /// Accepting clients.
    Serving = 1,
    /// SIGTERM or SIGINT came: no new client is accepted; the playing ones
    /// go on until the drain timeout.
    Draining = 2,
}

/// The proxy's phase, set by `app` and read by the probes.
#[derive(Debug, Default)]
pub struct Health {
    phase: AtomicU8,
}

/// What `/readyz` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Starting,
    Draining,
    /// These `required` paths' back ends are not up (sorted).
    Waiting(Vec<String>),
}

impl Health {
    #[must_use]
    pub fn new() -> Health {
        Health::default()
    }

    pub fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    #[must_use]
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Serving,
            _ => Phase::Draining,
        }
    }

    /// Whether the proxy is ready, the `required` paths asked of `supervisor`.
    #[must_use]
    pub fn readiness(&self, supervisor: &Supervisor) -> Readiness {
        match self.phase() {
            Phase::Starting => Readiness::Starting,
            Phase::Draining => Readiness::Draining,
            Phase::Serving => {
                let down = supervisor.required_down();
                if down.is_empty() {
                    Readiness::Ready
                } else {
                    Readiness::Waiting(down)
                }
            }
        }
    }
}

impl Readiness {
    /// The one-line text body of `/readyz`.
    #[must_use]
    pub fn text(&self) -> String {
        match self {
            Readiness::Ready => "ready\n".into(),
            Readiness::Starting => "not ready: starting\n".into(),
            Readiness::Draining => "not ready: draining (shutting down)\n".into(),
            Readiness::Waiting(paths) => format!(
                "not ready: waiting for the back end of required path(s) {}\n",
                paths.join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::StreamRegistry;
    use std::sync::Arc;

    #[test]
    fn phases_make_readiness() {
        let supervisor = Supervisor::new(Arc::new(StreamRegistry::new()), 1);
        let health = Health::new();
        assert_eq!(health.readiness(&supervisor), Readiness::Starting);
        health.set(Phase::Serving);
        assert_eq!(health.readiness(&supervisor), Readiness::Ready);
        assert_eq!(health.readiness(&supervisor).text(), "ready\n");
        health.set(Phase::Draining);
        assert_eq!(health.readiness(&supervisor), Readiness::Draining);
        assert_eq!(
            Readiness::Waiting(vec!["a".into(), "b".into()]).text(),
            "not ready: waiting for the back end of required path(s) a, b\n"
        );
    }
}
