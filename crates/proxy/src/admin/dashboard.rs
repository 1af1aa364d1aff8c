//! `GET /`: one self-contained page (no external assets, no build step) that
//! fetches `/v1/paths` every 2 s and draws each path's state, codecs, clients
//! and its bitrate over the last minutes (inline SVG from the server's history).
//! With a token, the page asks for it once (or takes it from `#token=...`,
//! which browsers never send) and keeps it in the tab's session storage.
//! With WebRTC on, each path has a "watch" link to its viewer page and a
//! "preview" button that plays it inline over WHEP from the WebRTC port
//! (cross-origin, with the admin token as a Bearer token); "close" deletes
//! the WHEP session.

pub const PAGE: &str = include_str!("dashboard.html");
