//! The per-stream hub between one source and its subscribers: continuity rewriting
//! of every packet (stable SSRC, sequence and timestamp across back-end resets) and
//! fan-out of one shared buffer to every sink.

pub mod keyframe_cache;
pub mod mpegts;
mod registry;
pub mod replay_timing;
pub mod sink;
mod stream;
mod subscriber;
pub mod udp_batch;

pub use registry::StreamRegistry;
pub use sink::{InterleavedQueue, Sink, SinkSet};
pub use stream::{
    Availability, ClientInfo, ClientSnapshot, ClientTransport, Closer, PlayOptions,
    PresentationChange, RtcpOutcome, SourceState, StartPoint, Stream, StreamSnapshot, StreamStats,
    SubscriberId,
};

#[cfg(test)]
mod relay_tests;
