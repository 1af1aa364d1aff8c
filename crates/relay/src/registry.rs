//! The streams the proxy serves, by name.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::stream::Stream;

/// Streams by name. Streams can be added and removed at run time (later: config
/// reload, REGISTER), so lookups go through this registry rather than a fixed list.
#[derive(Default)]
pub struct StreamRegistry {
    streams: RwLock<HashMap<String, Arc<Stream>>>,
}

impl StreamRegistry {
    pub fn new() -> StreamRegistry {
        StreamRegistry::default()
    }

    /// Adds a stream; false if the name is taken.
    pub fn insert(&self, stream: Arc<Stream>) -> bool {
        let mut map = self.streams.write().unwrap_or_else(|e| e.into_inner());
        if map.contains_key(stream.name()) {
            return false;
        }
        map.insert(stream.name().to_string(), stream);
        true
    }

    pub fn get(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn remove(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
    }

    pub fn all(&self) -> Vec<Arc<Stream>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
