//! The configuration in force: the start-up [`Config`], replaced by every
//! reload that is applied (with the settings that need a restart kept at their
//! running values, see `reload.rs`). REGISTER and the admin API's `PUT` read
//! the path defaults from here, so they build from the current settings, not
//! the start-up ones.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use super::Config;
use crate::server::register::RegisterSettings;
use crate::source::{Connector, SourceSettings};

/// The configuration in force, shared by REGISTER, the admin API and the
/// reloader (the only writer).
#[derive(Debug)]
pub struct CurrentConfig(RwLock<Arc<Config>>);

impl CurrentConfig {
    #[must_use]
    pub fn new(config: Config) -> CurrentConfig {
        CurrentConfig(RwLock::new(Arc::new(config)))
    }

    /// The configuration in force now.
    #[must_use]
    pub fn get(&self) -> Arc<Config> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `config` in force.
    pub fn set(&self, config: Config) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }
}

/// REGISTER reads the configuration in force at each request.
impl RegisterSettings for CurrentConfig {
    fn allows(&self, host: &str, peer: IpAddr) -> bool {
        self.get().allows(host, peer)
    }

    fn source_settings(
        &self,
        url: &str,
        interleaved: bool,
        connector: Connector,
    ) -> SourceSettings {
        self.get().source_settings(url, interleaved, connector)
    }

    fn keyframe_cache_bytes(&self) -> usize {
        self.get().keyframe_cache_bytes()
    }
}
