//! A raw RTSP client on one TCP connection: ask one request at a time, set up
//! and play a track over interleaved TCP, optionally from a chosen source
//! address (127.0.0.2, 127.0.0.3, ... are all this machine's).

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use super::clients::read_response_head;

/// Sends `req` and reads one response (head and body), skipping `$` frames.
pub fn ask(s: &mut TcpStream, req: &str) -> String {
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::new();
    read_response_head(s, &mut buf).unwrap_or_else(|e| panic!("no answer to {req}: {e}"))
}

/// A connection to `addr` from `source` (port chosen by the system), with a
/// 10 s read timeout.
pub fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(10))?;
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// Connects to `addr`, DESCRIBEs `url` and SETs UP its first track over
/// interleaved TCP; returns the connection and the SETUP answer's head.
pub fn set_up_interleaved(addr: SocketAddr, url: &str) -> (TcpStream, String) {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    set_up_interleaved_on(s, url)
}

/// [`set_up_interleaved`] on a connection already open.
pub fn set_up_interleaved_on(mut s: TcpStream, url: &str) -> (TcpStream, String) {
    ask(
        &mut s,
        &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    );
    let head = ask(
        &mut s,
        &format!("SETUP {url}/track1 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"),
    );
    (s, head)
}

/// The session id of a SETUP answer.
pub fn session_of(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no Session in {head:?}"))
        .to_owned()
}

/// A connection playing the first track of `url` over interleaved TCP.
pub fn play_interleaved(addr: SocketAddr, url: &str) -> TcpStream {
    let (mut s, head) = set_up_interleaved(addr, url);
    let session = session_of(&head);
    ask(
        &mut s,
        &format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n"),
    );
    s
}
