//! A minimal Chrome DevTools Protocol client for the tests that click in a
//! page (the dashboard's preview): Chromium started with
//! `--remote-debugging-port=0` prints its port; the page's WebSocket (found
//! with `GET /json/list`) takes `Runtime.evaluate`. Text frames only, masked
//! as a client must; no extension, no Origin header (Chromium accepts a
//! client without one).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The DevTools port of a Chromium whose stderr said
/// `DevTools listening on ws://127.0.0.1:PORT/devtools/browser/...`.
pub fn devtools_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("ws://").nth(1)?;
    rest.split('/').next()?.parse().ok()
}

/// One page's DevTools connection.
pub struct Page {
    ws: BufReader<TcpStream>,
    next_id: u64,
}

impl Page {
    /// Connects to the first page target of the browser at `devtools`,
    /// waiting up to `timeout` for it to be listed.
    pub fn connect(devtools: SocketAddr, timeout: Duration) -> Result<Page, String> {
        let deadline = Instant::now() + timeout;
        let ws_url = loop {
            if let Some(url) = page_ws_url(devtools) {
                break url;
            }
            if Instant::now() >= deadline {
                return Err(format!("no page target at {devtools} within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let path = ws_url
            .strip_prefix("ws://")
            .and_then(|r| r.find('/').map(|i| r[i..].to_owned()))
            .ok_or_else(|| format!("odd WebSocket URL {ws_url}"))?;
        let mut tcp = TcpStream::connect_timeout(&devtools, Duration::from_secs(5))
            .map_err(|e| format!("connect {devtools}: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {devtools}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut ws = BufReader::new(tcp);
        let mut status = String::new();
        ws.read_line(&mut status).map_err(|e| e.to_string())?;
        if !status.contains(" 101 ") {
            return Err(format!("WebSocket upgrade refused: {status}"));
        }
        loop {
            let mut line = String::new();
            if ws.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("the DevTools connection closed".into());
            }
            if line.trim().is_empty() {
                break;
            }
        }
        Ok(Page { ws, next_id: 1 })
    }

    /// Calls `method`; its result (events on the way are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.send(msg.as_bytes())?;
        loop {
            let reply: Value = serde_json::from_slice(&self.receive()?)
                .map_err(|e| format!("DevTools sent no JSON: {e}"))?;
            if reply["id"] == id {
                if let Some(e) = reply.get("error") {
                    return Err(format!("{method}: {e}"));
                }
                return Ok(reply["result"].clone());
            }
        }
    }

    /// The value of the JavaScript `expression` (a promise is awaited).
    pub fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("{expression}: {e}"));
        }
        Ok(r["result"]["value"].clone())
    }

    fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        let mask = [0x5a, 0x17, 0xc3, 0x9e];
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.ws
            .get_mut()
            .write_all(&frame)
            .map_err(|e| e.to_string())
    }

    /// One whole message (continuation frames joined; pings answered).
    fn receive(&mut self) -> Result<Vec<u8>, String> {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.ws
                .read_exact(&mut head)
                .map_err(|e| format!("DevTools: {e}"))?;
            let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
            let mut len = u64::from(head[1] & 0x7f);
            if len == 126 {
                let mut b = [0u8; 2];
                self.ws.read_exact(&mut b).map_err(|e| e.to_string())?;
                len = u64::from(u16::from_be_bytes(b));
            } else if len == 127 {
                let mut b = [0u8; 8];
                self.ws.read_exact(&mut b).map_err(|e| e.to_string())?;
                len = u64::from_be_bytes(b);
            }
            let mut mask = None;
            if head[1] & 0x80 != 0 {
                let mut m = [0u8; 4];
                self.ws.read_exact(&mut m).map_err(|e| e.to_string())?;
                mask = Some(m);
            }
            if len > 64 << 20 {
                return Err(format!("a DevTools frame of {len} bytes"));
            }
            let mut payload = vec![0u8; len as usize];
            self.ws
                .read_exact(&mut payload)
                .map_err(|e| e.to_string())?;
            if let Some(m) = mask {
                payload
                    .iter_mut()
                    .enumerate()
                    .for_each(|(i, b)| *b ^= m[i % 4]);
            }
            match opcode {
                0x8 => return Err("DevTools closed the connection".into()),
                0x9 => {
                    // A ping: pong with its payload (not expected from Chromium).
                    let mut pong = vec![0x8a, 0x80 | payload.len().min(125) as u8, 0, 0, 0, 0];
                    pong.extend_from_slice(&payload[..payload.len().min(125)]);
                    self.ws
                        .get_mut()
                        .write_all(&pong)
                        .map_err(|e| e.to_string())?;
                }
                0xa => {}
                _ => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return Ok(message);
                    }
                }
            }
        }
    }
}

/// The WebSocket URL of the first page `GET /json/list` lists.
fn page_ws_url(devtools: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&devtools, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(
        format!("GET /json/list HTTP/1.1\r\nHost: {devtools}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let body = out.split_once("\r\n\r\n")?.1;
    let list: Value = serde_json::from_str(body).ok()?;
    list.as_array()?
        .iter()
        .find(|t| t["type"] == "page")
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .map(str::to_owned)
}
