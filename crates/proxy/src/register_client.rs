//! `rtsp-proxy register` / `rtsp-proxy deregister`: sends one REGISTER or DEREGISTER
//! to a proxy started with `-R` (the job of live555's `registerRTSPStream`), answering
//! a Digest challenge with `-u`. With `--reuse-connection`, once the proxy said 200
//! the command stays and relays bytes both ways between the proxy's connection and a
//! new connection to the registered URL's host and port, until either side closes:
//! the proxy pulls the stream over the connection this command opened (how a camera
//! behind NAT is reached).

use std::time::Duration;

use bytes::BytesMut;
use rtsp::auth::ClientAuth;
use rtsp::url::RtspUrl;
use rtsp::{Frame, Method, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::subcommand::{Kind, RegisterCommand};

/// Connecting, and each answer of the proxy, must take no longer than this.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why the command failed (printed by `main`, exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the proxy at {0}")]
    Connect(String),
    #[error("connection to the proxy failed: {0}")]
    Io(String),
    #[error("the proxy did not answer within {} s", TIMEOUT.as_secs())]
    Timeout,
    #[error("the proxy answered something that is not an RTSP response: {0}")]
    Protocol(String),
    #[error("{method} refused: {status_line}{hint}")]
    Refused {
        method: &'static str,
        status_line: String,
        hint: &'static str,
    },
    #[error("registered, but cannot connect to the back end {0} to relay the connection")]
    Relay(String),
}

/// The `Transport:` header of the request (live555's registerRTSPStream sends the
/// same, plus `reuse_connection; ` first when asked).
#[must_use]
pub fn transport_value(cmd: &RegisterCommand) -> String {
    let mut value = String::new();
    if cmd.kind == Kind::Register {
        if cmd.reuse_connection {
            value.push_str("reuse_connection; ");
        }
        value.push_str(if cmd.interleaved {
            "preferred_delivery_protocol=interleaved"
        } else {
            "preferred_delivery_protocol=udp"
        });
        if let Some(s) = &cmd.suffix {
            value.push_str("; proxy_url_suffix=");
            value.push_str(s);
        }
    } else if let Some(s) = &cmd.suffix {
        value.push_str("proxy_url_suffix=");
        value.push_str(s);
    }
    value
}

/// Runs the command.
///
/// # Errors
///
/// Any answer but 200, and every network failure.
pub async fn run(cmd: &RegisterCommand) -> Result<(), ClientError> {
    let method = match cmd.kind {
        Kind::Register => Method::Register,
        Kind::Deregister => Method::Deregister,
    };
    let target = format!("{}:{}", cmd.proxy_host, cmd.proxy_port);
    let mut proxy = match tokio::time::timeout(
        TIMEOUT,
        TcpStream::connect((cmd.proxy_host.as_str(), cmd.proxy_port)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ClientError::Connect(format!("{target}: {e}"))),
        Err(_) => return Err(ClientError::Connect(format!("{target}: timed out"))),
    };
    let _ = proxy.set_nodelay(true);
    let mut auth = cmd.credentials.clone().map(ClientAuth::new);
    let mut buf = BytesMut::with_capacity(4096);
    let mut cseq = 1u32;
    let response = loop {
        let mut req = Request::new(method.clone(), cmd.url.as_str())
            .with_header("CSeq", cseq.to_string())
            .with_header(
                "User-Agent",
                format!("{} ({})", crate::SOFTWARE, cmd.kind.word()),
            )
            .with_header("Transport", transport_value(cmd));
        if let Some(value) = auth
            .as_mut()
            .and_then(|a| a.authorization(method.as_str(), &cmd.url))
        {
            req.headers.set("Authorization", value);
        }
        write_all(&mut proxy, &req.to_bytes()).await?;
        let resp = read_response(&mut proxy, &mut buf).await?;
        if resp.status == 401 && cseq < 3 {
            if let Some(a) = auth.as_mut() {
                if a.on_unauthorized(resp.headers.get_all("WWW-Authenticate")) {
                    cseq += 1;
                    continue;
                }
            }
        }
        break resp;
    };
    let status_line = format!(
        "{} {} {}",
        response.version, response.status, response.reason
    );
    eprintln!(
        "{} {}: {status_line}",
        method.as_str(),
        rtsp::url::redact(&cmd.url)
    );
    if response.status != 200 {
        let hint = match (response.status, cmd.credentials.is_some()) {
            (401, false) => " (the proxy wants credentials: -u <username> <password>)",
            (401, true) => " (wrong username or password)",
            (405, _) => " (is the proxy running with -R?)",
            (451, _) if cmd.kind == Kind::Register => " (that stream name is taken)",
            (451, _) => " (no registered stream of that name)",
            (403, _) => {
                " (the proxy does not allow registering that URL; see its --register-allow)"
            }
            _ => "",
        };
        return Err(ClientError::Refused {
            method: method_name(cmd.kind),
            status_line,
            hint,
        });
    }
    if cmd.kind == Kind::Register && cmd.reuse_connection {
        relay(cmd, proxy, buf).await?;
    }
    Ok(())
}

fn method_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Register => "REGISTER",
        Kind::Deregister => "DEREGISTER",
    }
}

/// Relays the proxy's connection to the registered URL's host and port, `early`
/// (what the proxy sent right after its 200) first.
async fn relay(
    cmd: &RegisterCommand,
    mut proxy: TcpStream,
    early: BytesMut,
) -> Result<(), ClientError> {
    let url = RtspUrl::parse(&cmd.url)
        .map_err(|e| ClientError::Relay(format!("{}: {e}", rtsp::url::redact(&cmd.url))))?;
    let (host, port) = url.connect_target();
    let mut camera =
        match tokio::time::timeout(TIMEOUT, TcpStream::connect((host.as_str(), port))).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(ClientError::Relay(format!("{}: {e}", url.authority()))),
            Err(_) => {
                return Err(ClientError::Relay(format!(
                    "{}: timed out",
                    url.authority()
                )))
            }
        };
    let _ = camera.set_nodelay(true);
    let local = camera
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let remote = camera
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| url.authority());
    eprintln!("Relaying the proxy's connection to the back end {remote} (from {local}) until either side closes");
    if !early.is_empty() {
        camera
            .write_all(&early)
            .await
            .map_err(|e| ClientError::Relay(format!("{remote}: {e}")))?;
    }
    match tokio::io::copy_bidirectional(&mut proxy, &mut camera).await {
        Ok((up, down)) => {
            eprintln!(
                "Relay ended ({down} bytes to the proxy, {} bytes to the back end)",
                up + early.len() as u64
            );
        }
        Err(e) => eprintln!("Relay ended: {e}"),
    }
    Ok(())
}

async fn write_all(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), ClientError> {
    match tokio::time::timeout(TIMEOUT, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ClientError::Io(e.to_string())),
        Err(_) => Err(ClientError::Timeout),
    }
}

/// Reads until one response is complete; later bytes stay in `buf`.
async fn read_response(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<Response, ClientError> {
    let limits = rtsp::Limits::default();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match rtsp::parse_frame(buf, &limits) {
            Ok(Some(Frame::Response(r))) => return Ok(r),
            Ok(Some(Frame::Request(r))) => {
                return Err(ClientError::Protocol(format!("a {} request", r.method)))
            }
            Ok(Some(Frame::Interleaved { .. })) => continue,
            Ok(None) => {}
            Err(e) => return Err(ClientError::Protocol(e.to_string())),
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
            Ok(Ok(0)) => return Err(ClientError::Io("closed by the proxy".into())),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(ClientError::Io(e.to_string())),
            Err(_) => return Err(ClientError::Timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(kind: Kind, suffix: Option<&str>, interleaved: bool, reuse: bool) -> RegisterCommand {
        RegisterCommand {
            kind,
            proxy_host: "127.0.0.1".into(),
            proxy_port: 9554,
            url: "rtsp://10.0.0.5/live".into(),
            suffix: suffix.map(str::to_owned),
            credentials: None,
            interleaved,
            reuse_connection: reuse,
        }
    }

    #[test]
    fn transport_header_like_register_rtsp_stream() {
        assert_eq!(
            transport_value(&cmd(Kind::Register, None, false, false)),
            "preferred_delivery_protocol=udp"
        );
        assert_eq!(
            transport_value(&cmd(Kind::Register, Some("cam1"), true, false)),
            "preferred_delivery_protocol=interleaved; proxy_url_suffix=cam1"
        );
        assert_eq!(
            transport_value(&cmd(Kind::Register, Some("cam1"), false, true)),
            "reuse_connection; preferred_delivery_protocol=udp; proxy_url_suffix=cam1"
        );
        assert_eq!(
            transport_value(&cmd(Kind::Deregister, Some("cam1"), false, false)),
            "proxy_url_suffix=cam1"
        );
    }
}
