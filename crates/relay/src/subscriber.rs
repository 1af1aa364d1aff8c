//! [`SubscriberId`]: one front-end session within a stream. Its own module,
//! below both the stream (`stream.rs`, which hands them out) and the sinks
//! (`sink.rs`, which are keyed by them).

/// Identifies one front-end session within a stream.
pub type SubscriberId = u64;
