//! A small async RTSP client connection for the load generator: requests with
//! CSeq and Session, responses read from a byte stream that may also carry
//! interleaved `$` frames.

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rtsp::{parse_frame, Frame, Limits, Method, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One RTSP connection.
pub struct RtspConn {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read and not parsed yet.
    pub buf: BytesMut,
    cseq: u32,
    /// Session id once SETUP answered.
    pub session: Option<String>,
    /// Session timeout announced by the server (s).
    pub timeout: Option<u32>,
    limits: Limits,
}

fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

impl RtspConn {
    /// Connects (with a timeout).
    pub async fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<RtspConn> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| err("connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(RtspConn {
            stream,
            buf: BytesMut::with_capacity(256 * 1024),
            cseq: 0,
            session: None,
            timeout: None,
            limits: Limits::default(),
        })
    }

    /// Writes a request (CSeq, Session, User-Agent added), returns its CSeq.
    pub async fn send(&mut self, mut req: Request) -> io::Result<u32> {
        self.cseq += 1;
        req.headers.set("CSeq", self.cseq.to_string());
        req.headers.set("User-Agent", "rtsp-bench");
        if let Some(s) = &self.session {
            req.headers.set("Session", s.clone());
        }
        self.stream.write_all(&req.to_bytes()).await?;
        Ok(self.cseq)
    }

    /// Sends a request and waits for its response; interleaved frames read
    /// meanwhile go to `on_data(channel, payload)`.
    pub async fn request(
        &mut self,
        req: Request,
        timeout: Duration,
        on_data: &mut dyn FnMut(u8, &[u8]),
    ) -> io::Result<Response> {
        let cseq = self.send(req).await?;
        tokio::time::timeout(timeout, self.read_response(cseq, on_data))
            .await
            .map_err(|_| err("no response in time"))?
    }

    async fn read_response(
        &mut self,
        cseq: u32,
        on_data: &mut dyn FnMut(u8, &[u8]),
    ) -> io::Result<Response> {
        loop {
            while let Some(frame) = self.next_frame()? {
                match frame {
                    Frame::Response(r) if r.cseq() == Some(cseq) => {
                        if let Some(s) = r.header("Session") {
                            if let Ok(h) = rtsp::header::SessionHeader::parse(s) {
                                self.session = Some(h.id);
                                self.timeout = h.timeout.or(self.timeout);
                            }
                        }
                        return Ok(r);
                    }
                    Frame::Interleaved { channel, payload } => on_data(channel, &payload),
                    _ => {}
                }
            }
            if self.buf.capacity() - self.buf.len() < 64 * 1024 {
                self.buf.reserve(128 * 1024);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(err("connection closed by the server"));
            }
        }
    }

    /// Parses one frame from what was read.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        parse_frame(&mut self.buf, &self.limits)
            .map_err(|e| err(format!("bad RTSP from the server: {e}")))
    }

    /// Splits off complete interleaved frames at the front of the buffer without
    /// allocating, calling `on_data(channel, payload)`; other messages (responses
    /// to keep-alives) are parsed and dropped. Returns when more bytes are needed.
    pub fn drain(&mut self, on_data: &mut dyn FnMut(u8, &[u8])) -> io::Result<()> {
        loop {
            match self.buf.first() {
                None => return Ok(()),
                Some(b'$') => {
                    if self.buf.len() < 4 {
                        return Ok(());
                    }
                    let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                    if self.buf.len() < 4 + len {
                        return Ok(());
                    }
                    on_data(self.buf[1], &self.buf[4..4 + len]);
                    self.buf.advance(4 + len);
                }
                Some(_) => match self.next_frame()? {
                    None => return Ok(()),
                    Some(Frame::Interleaved { channel, payload }) => on_data(channel, &payload),
                    Some(Frame::Response(r)) if !r.is_success() => {
                        return Err(err(format!(
                            "keep-alive answered {} {}",
                            r.status, r.reason
                        )))
                    }
                    Some(_) => {}
                },
            }
        }
    }
}

/// A request for `uri`.
/// `resp` unless it is a 200: then an error naming what was asked
/// ("SETUP answered 454 Session Not Found").
pub fn ok(what: &str, resp: Response) -> io::Result<Response> {
    if resp.status == 200 {
        Ok(resp)
    } else {
        Err(err(format!(
            "{what} answered {} {}",
            resp.status, resp.reason
        )))
    }
}

pub fn request(method: Method, uri: &str) -> Request {
    Request::new(method, uri)
}

/// Picks the control URL of the first video (else first) media of an SDP,
/// resolved against `base`.
pub fn media_control(sdp: &str, base: &str) -> String {
    let mut in_media = false;
    let mut best: Option<(bool, String)> = None;
    let mut video = false;
    let mut session_control = None;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            in_media = true;
            video = m.starts_with("video");
        } else if let Some(c) = line.strip_prefix("a=control:") {
            if !in_media {
                session_control = Some(c.trim().to_owned());
            } else if best.as_ref().is_none_or(|(v, _)| !v && video) {
                best = Some((video, c.trim().to_owned()));
            }
        }
    }
    let base = match session_control {
        Some(c) if c != "*" => rtsp::url::resolve_control(base, &c),
        _ => base.to_owned(),
    };
    match best {
        Some((_, c)) => rtsp::url::resolve_control(&base, &c),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_of_the_video_track() {
        let sdp = "v=0\r\na=control:*\r\nm=audio 0 RTP/AVP 0\r\na=control:track2\r\nm=video 0 RTP/AVP 96\r\na=control:track1\r\n";
        assert_eq!(
            media_control(sdp, "rtsp://h:1/proxyStream/"),
            "rtsp://h:1/proxyStream/track1"
        );
        let sdp = crate::gen::Workload::default().sdp(1);
        assert_eq!(
            media_control(&sdp, "rtsp://h/stream/"),
            "rtsp://h/stream/trackID=0"
        );
    }
}
