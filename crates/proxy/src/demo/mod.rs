//! The built-in demo source: an H.264 test pattern (a short clip made with ffmpeg,
//! checked in) played in a loop with continuous timestamps, served as the stream
//! `demo`. It lets a newcomer see the proxy work without a camera, and gives the
//! test suite a back end that needs nothing installed (a proxy proxying a proxy).

pub mod clip;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::relay::Stream;
use crate::sdp::{self, Presentation};
use crate::tasks::Tasks;
use clip::DemoClip;

/// The clip: 320x240 testsrc2, 25 fps, 2 s, H.264 baseline with AUDs (see
/// `tests/backend/make_demo_clip.sh`).
pub const CLIP: &[u8] = include_bytes!("testpattern.h264");
/// Frame rate the clip was encoded at.
pub const CLIP_FPS: u32 = 25;
/// Name of the demo stream.
pub const STREAM_NAME: &str = "demo";

/// Errors starting the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo clip: {0}")]
    Clip(#[from] clip::ClipError),
    #[error("demo SDP: {0}")]
    Sdp(#[from] sdp::SdpError),
}

/// The presentation of the demo stream.
pub fn presentation(clip: &DemoClip) -> Result<Presentation, DemoError> {
    let text = format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=rtsp-proxy demo\r\nt=0 0\r\n{}a=control:track1\r\n",
        clip.sdp_media(96)
    );
    Ok(sdp::parse(&text)?)
}

/// Starts the demo source feeding `stream`, a task of `tasks`.
pub fn spawn(stream: Arc<Stream>, tasks: &Tasks) -> Result<(), DemoError> {
    let mut clip = DemoClip::new(CLIP, CLIP_FPS)?;
    stream.set_presentation(presentation(&clip)?);
    // The clip plays from the start (for the admin port's state).
    stream.source_playing(&[]);
    tasks.spawn(async move {
        let mut start = tokio::time::Instant::now();
        let mut packets = Vec::new();
        loop {
            let due = clip.next_frame(&mut packets);
            let at = start + due;
            let late = tokio::time::Instant::now().saturating_duration_since(at);
            if late > Duration::from_secs(1) {
                // The process was starved or suspended: go on from now instead of
                // bursting out every missed frame.
                start += late;
            } else {
                tokio::time::sleep_until(at).await;
            }
            stream.push_rtp_batch(0, &mut packets, Instant::now());
        }
    });
    Ok(())
}
