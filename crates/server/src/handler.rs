//! Front-end request handling: one RTSP request in, one response queued on the
//! connection. Synchronous: it touches only in-memory state (streams, sessions), so
//! every rule here is testable without sockets.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rtsp::header::range::Range;
use rtsp::header::rtp_info::{self, RtpInfo};
use rtsp::header::session::SessionHeader;
use rtsp::header::transport::{Cast, ChannelRange, LowerTransport, PortRange, Transport};
use rtsp::{Method, Request, Response, Version};
use tracing::{debug, info, warn};

use super::access;
use super::client_sessions::{self, ClientSession, SessionRef, SessionState, TrackTransport};
pub use super::register::Next;
pub use super::reply::{send, ConnContext};
use super::target::{self, Target};
use super::ServerContext;
use relay::{Availability, ClientInfo, ClientTransport, Closer, Sink, StartPoint, Stream};

use crate::conn_out::ConnOut;
use sdp::{self, RenderOptions};

/// Methods we implement, in the order of the `Public:` header.
pub const PUBLIC: &str =
    "OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY, PAUSE, GET_PARAMETER, SET_PARAMETER";
/// [`PUBLIC`] with REGISTER and DEREGISTER, when `-R` accepts them (as live555).
pub const PUBLIC_WITH_REGISTER: &str = "OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY, PAUSE, GET_PARAMETER, SET_PARAMETER, REGISTER, DEREGISTER";

/// The methods this server accepts (`Public:` and `Allow:`).
pub fn public(ctx: &ServerContext) -> &'static str {
    if ctx.register.is_some() {
        PUBLIC_WITH_REGISTER
    } else {
        PUBLIC
    }
}

/// An error answer: status plus a log line at debug level.
fn error(status: u16, why: &str) -> Response {
    debug!(status, "{why}");
    Response::new(status)
}

/// The stream a DESCRIBE or SETUP is for, when that stream's source is still on
/// its first attempt (the caller waits for it before handling the request).
pub fn pending_stream(ctx: &ServerContext, req: &Request) -> Option<Arc<relay::Stream>> {
    if !matches!(req.method, Method::Describe | Method::Setup) {
        return None;
    }
    match target::resolve(&req.uri, |n| ctx.streams.get(n).is_some())? {
        Target::Stream { name, .. } => {
            let stream = ctx.streams.get(&name)?;
            // An idle on-demand source connects now.
            stream.want();
            (stream.availability() == Availability::Pending).then_some(stream)
        }
        Target::Server => None,
    }
}

/// Handles one request, queueing exactly one response.
pub fn handle(ctx: &Arc<ServerContext>, conn: &ConnContext, req: &Request, now: Instant) -> Next {
    let cseq = req.header("CSeq").map(str::to_owned);
    let Some(cseq) =
        cseq.filter(|c| !c.is_empty() && c.len() <= 10 && c.bytes().all(|b| b.is_ascii_digit()))
    else {
        send(ctx, conn, None, error(400, "request without a valid CSeq"));
        return Next::Continue;
    };
    let cseq = Some(cseq.as_str());
    if req.version != Version::Rtsp10 {
        send(ctx, conn, cseq, error(505, "unsupported RTSP version"));
        return Next::Continue;
    }
    // RFC 2326 12.32: we support no option tags, so any Require is refused.
    let required: Vec<&str> = req
        .headers
        .get_all("Require")
        .chain(req.headers.get_all("Proxy-Require"))
        .collect();
    if !required.is_empty() {
        let resp = error(551, "Require header").with_header("Unsupported", required.join(", "));
        send(ctx, conn, cseq, resp);
        return Next::Continue;
    }
    // Clients log in for everything but OPTIONS (-C), before anything else is
    // looked at, so an unknown stream or session tells a stranger nothing.
    // REGISTER and DEREGISTER have their own users (-U).
    let registering =
        matches!(req.method, Method::Register | Method::Deregister) && ctx.register.is_some();
    if let Some(access) = &ctx.client_auth {
        if req.method != Method::Options && !registering {
            let in_session = req
                .header("Session")
                .and_then(|v| SessionHeader::parse(v).ok())
                .is_some_and(|h| ctx.sessions.get(&h.id).is_some());
            if let Err(challenge) = access.check(req, conn.secure, in_session, now) {
                match challenge.refusal {
                    access::Refusal::Missing => {
                        debug!(peer = %conn.peer, method = %req.method.as_str(), "asking the client to log in")
                    }
                    ref why => {
                        info!(peer = %conn.peer, method = %req.method.as_str(), "client login refused: {why}")
                    }
                }
                send(ctx, conn, cseq, *challenge.response);
                return Next::Continue;
            }
        }
    }
    // A Session header must name a live session (any method), and keeps it alive.
    let session = match req.header("Session") {
        None => None,
        Some(v) => {
            let found = SessionHeader::parse(v)
                .ok()
                .and_then(|h| ctx.sessions.get(&h.id));
            // A session answers only the address that created it (unless
            // --sessions-from-any-address): nobody else can PAUSE, TEARDOWN or
            // add tracks to it.
            let found = found.filter(|s| {
                let owner = client_sessions::lock(s).peer_ip;
                let ours = ctx.sessions_from_any_address
                    || owner == conn.peer.ip().to_canonical();
                if !ours
                    && ctx
                        .foreign_session_warnings
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .should_log(now)
                {
                    warn!(
                        peer = %conn.peer,
                        "{} for a session another address created: 454 \
                         (--sessions-from-any-address allows it, for clients behind a changing NAT)",
                        req.method
                    );
                }
                ours
            });
            match found {
                Some(s) => {
                    client_sessions::lock(&s).last_activity = now;
                    Some(s)
                }
                None => {
                    send(ctx, conn, cseq, error(454, "unknown session"));
                    return Next::Continue;
                }
            }
        }
    };
    if registering {
        return super::register::handle(ctx, conn, req, cseq, now);
    }
    // A SETUP or TEARDOWN that changes the tracks of a playing session restarts
    // its delivery, once its answer is queued.
    let mut restart = None;
    let resp = match &req.method {
        Method::Options => Some(Response::new(200).with_header("Public", public(ctx))),
        Method::Describe => Some(describe(ctx, conn, req)),
        Method::Setup => Some(setup(ctx, conn, req, session, now, &mut restart)),
        Method::Play => match session {
            Some(s) => play(ctx, conn, req, &s, cseq, now),
            None => Some(error(454, "PLAY without a session")),
        },
        Method::Pause => Some(match session {
            Some(s) => pause(ctx, req, &s),
            None => error(454, "PAUSE without a session"),
        }),
        Method::Teardown => Some(match session {
            Some(s) => teardown(ctx, req, &s, &mut restart),
            None => error(454, "TEARDOWN without a session"),
        }),
        Method::GetParameter | Method::SetParameter => Some(parameter(ctx, req, session.as_ref())),
        Method::Announce
        | Method::Record
        | Method::Redirect
        | Method::Register
        | Method::Deregister => Some(
            error(405, "method not allowed on a proxy stream").with_header("Allow", public(ctx)),
        ),
        Method::Get | Method::Post | Method::Extension(_) => {
            Some(error(501, "unknown method").with_header("Allow", public(ctx)))
        }
    };
    match (resp, restart) {
        (Some(resp), Some(s)) => restart_delivery(ctx, conn, cseq, &s, now, resp),
        (Some(resp), None) => send(ctx, conn, cseq, resp),
        (None, _) => {}
    }
    Next::Continue
}

fn session_header(s: &SessionRef, with_timeout: Option<u64>) -> String {
    let id = client_sessions::lock(s).id.clone();
    match with_timeout {
        Some(t) => format!("{id};timeout={t}"),
        None => id,
    }
}

fn describe(ctx: &ServerContext, conn: &ConnContext, req: &Request) -> Response {
    let name = match target::resolve(&req.uri, |n| ctx.streams.get(n).is_some()) {
        Some(Target::Stream { name, track: None }) => name,
        _ => return error(404, "DESCRIBE of an unknown stream"),
    };
    let Some(stream) = ctx.streams.get(&name) else {
        return error(404, "stream vanished");
    };
    let Some(presentation) = stream.presentation() else {
        // The back end was never reached: tell the client to come back later.
        return error(503, "DESCRIBE before the back end answered").with_header("Retry-After", "5");
    };
    let opts = RenderOptions {
        session_id: stream.sdp_session_id(),
        origin: conn.local.ip(),
        tool: ctx.server_name.clone(),
    };
    let body = sdp::render(&presentation, &opts);
    Response::new(200)
        .with_header("Content-Base", format!("{}/", base_url(conn, &name)))
        .with_body("application/sdp", body)
}

/// `rtsp://<address the client connected to>/<stream>` (`rtsps://` over TLS).
fn base_url(conn: &ConnContext, stream: &str) -> String {
    let host = match conn.local.ip().to_canonical() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let scheme = if conn.secure { "rtsps" } else { "rtsp" };
    format!("{scheme}://{host}:{}/{stream}", conn.local.port())
}

/// The transport we will use for one SETUP, chosen from the client's offers.
enum Chosen {
    Udp {
        client: PortRange,
    },
    Interleaved {
        channels: Option<ChannelRange>,
    },
    /// The stream's group: whatever `destination`, `port` or `ttl` the client
    /// named is ignored (we never send where a client points us).
    Multicast,
}

fn choose_transport(
    ctx: &ServerContext,
    conn: &ConnContext,
    offers: &[Transport],
) -> Option<Chosen> {
    for t in offers {
        if !t.protocol.eq_ignore_ascii_case("RTP") || !t.profile.eq_ignore_ascii_case("AVP") {
            continue;
        }
        if t.cast == Some(Cast::Multicast) {
            // Without --multicast-range (or over a tunnel, or asked over TCP)
            // multicast is not on offer: the next alternative, else 461.
            if ctx.multicast.is_some() && t.lower == LowerTransport::Udp && !conn.tunnelled {
                return Some(Chosen::Multicast);
            }
            continue;
        }
        match t.lower {
            LowerTransport::Tcp => {
                return Some(Chosen::Interleaved {
                    channels: t.interleaved,
                })
            }
            // Over an HTTP tunnel there is no UDP path: live555 forces TCP too.
            LowerTransport::Udp if conn.tunnelled => {
                return Some(Chosen::Interleaved { channels: None })
            }
            // Over TLS, media must not leave the connection in clear: UDP is not
            // on offer (a client that offered only UDP gets 461 and retries
            // over TCP).
            LowerTransport::Udp if conn.secure => {}
            // Without a media socket for the client's address family UDP is not on
            // offer: try the next alternative.
            LowerTransport::Udp if ctx.media_for(conn.peer.ip()).is_none() => {}
            LowerTransport::Udp => {
                if let Some(client) = t.client_port.filter(|p| p.rtp != 0) {
                    return Some(Chosen::Udp { client });
                }
            }
        }
    }
    None
}

fn setup(
    ctx: &Arc<ServerContext>,
    conn: &ConnContext,
    req: &Request,
    session: Option<SessionRef>,
    now: Instant,
    restart: &mut Option<SessionRef>,
) -> Response {
    let (name, stream, track) = match setup_target(ctx, req) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let Some(offers) = req
        .header("Transport")
        .and_then(|v| Transport::parse_list(v).ok())
    else {
        return error(461, "SETUP without a usable Transport header");
    };
    let Some(chosen) = choose_transport(ctx, conn, &offers) else {
        return error(
            461,
            if conn.secure {
                "no supported transport offered (over TLS: RTP/AVP/TCP interleaved)"
            } else {
                "no supported transport offered (RTP/AVP unicast over UDP or TCP)"
            },
        );
    };
    let session = match setup_session(ctx, conn, session, &stream, &name, track, now) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let mut st = client_sessions::lock(&session);
    let transport_reply = match setup_track(ctx, conn, &session, &mut st, track, chosen) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let playing = st.state == SessionState::Playing;
    let id = st.id.clone();
    let rtcp_addrs = udp_rtcp_addrs(&st);
    drop(st);
    // Indexed once the session lock is released: the table locks sessions while
    // it holds its own lock, never the other way round.
    ctx.sessions.index_rtcp(&id, &rtcp_addrs);
    info!(session = %id, stream = %name, track = track + 1, transport = %transport_reply, "client SETUP");
    if playing {
        // A track added to a playing session starts at once (after this answer).
        *restart = Some(session.clone());
    }
    Response::new(200)
        .with_header("Transport", transport_reply.to_string())
        .with_header(
            "Session",
            session_header(&session, Some(ctx.session_timeout.as_secs())),
        )
}

/// The stream and track a SETUP names (its name, the stream, the track index),
/// or the error answer.
fn setup_target(
    ctx: &ServerContext,
    req: &Request,
) -> Result<(String, Arc<Stream>, usize), Response> {
    let (name, track) = match target::resolve(&req.uri, |n| ctx.streams.get(n).is_some()) {
        Some(Target::Stream { name, track }) => (name, track),
        _ => return Err(error(404, "SETUP of an unknown stream or track")),
    };
    let Some(stream) = ctx.streams.get(&name) else {
        return Err(error(404, "stream vanished"));
    };
    let Some(presentation) = stream.presentation() else {
        return Err(
            error(503, "SETUP before the back end answered").with_header("Retry-After", "5")
        );
    };
    let track = match track {
        Some(t) if t < presentation.tracks.len() => t,
        Some(_) => return Err(error(404, "SETUP of an unknown track")),
        // Aggregate SETUP works only for a single-track stream.
        None if presentation.tracks.len() == 1 => 0,
        None => return Err(error(459, "aggregate SETUP of a multi-track stream")),
    };
    Ok((name, stream, track))
}

/// The session a SETUP adds its track to: the one it names (which must be of
/// the same stream, and not playing that track already), or a new one.
fn setup_session(
    ctx: &ServerContext,
    conn: &ConnContext,
    session: Option<SessionRef>,
    stream: &Arc<Stream>,
    name: &str,
    track: usize,
    now: Instant,
) -> Result<SessionRef, Response> {
    match session {
        Some(s) => {
            {
                let st = client_sessions::lock(&s);
                if st.stream.name() != name {
                    return Err(error(459, "SETUP of another stream in an existing session"));
                }
                if st.state != SessionState::Ready && st.tracks.contains_key(&track) {
                    return Err(error(455, "transport change while playing"));
                }
            }
            Ok(s)
        }
        None => ctx
            .sessions
            .create(stream.clone(), conn.peer.ip(), conn.out.id(), now)
            .map_err(|e| {
                info!(peer = %conn.peer, "SETUP refused: {e}");
                Response::new(453)
            }),
    }
}

/// Sets `track` of the locked session `st` up over the chosen transport;
/// returns the Transport header of the answer, or the error answer.
fn setup_track(
    ctx: &ServerContext,
    conn: &ConnContext,
    session: &SessionRef,
    st: &mut ClientSession,
    track: usize,
    chosen: Chosen,
) -> Result<Transport, Response> {
    let ssrc = st.stream.track_ssrc(track);
    let others_multicast = st
        .tracks
        .iter()
        .filter(|(t, _)| **t != track)
        .map(|(_, tt)| matches!(tt, TrackTransport::Multicast { .. }))
        .collect::<Vec<bool>>();
    if others_multicast
        .iter()
        .any(|m| *m != matches!(chosen, Chosen::Multicast))
    {
        return Err(error(
            461,
            "a session's tracks must be all multicast or all unicast",
        ));
    }
    let mut t = match chosen {
        Chosen::Multicast => setup_multicast(ctx, conn, session, st, track)?,
        Chosen::Udp { client } => setup_udp(ctx, conn, st, track, client)?,
        Chosen::Interleaved { channels } => setup_interleaved(conn, st, track, channels)?,
    };
    t.ssrc = ssrc;
    Ok(t)
}

/// A multicast track: the session joins the stream's group.
fn setup_multicast(
    ctx: &ServerContext,
    conn: &ConnContext,
    session: &SessionRef,
    st: &mut ClientSession,
    track: usize,
) -> Result<Transport, Response> {
    let Some(mc) = ctx.multicast.as_ref() else {
        return Err(error(461, "multicast is not configured"));
    };
    let member = (st.subscriber, conn.peer.ip());
    let joined = mc
        .setup(
            &st.stream,
            st.generation,
            track,
            member,
            Arc::downgrade(session),
        )
        .map_err(|e| error(e.status(), "no multicast group for this SETUP"))?;
    st.tracks.insert(
        track,
        TrackTransport::Multicast {
            group: joined.group,
        },
    );
    let mut t = Transport {
        cast: Some(Cast::Multicast),
        ..Transport::rtp_avp(LowerTransport::Udp)
    };
    t.destination = Some(joined.group.ip().to_string());
    t.source = joined.source.map(|s| s.to_string());
    t.port = Some(PortRange {
        rtp: joined.group.port(),
        rtcp: Some(joined.group.port().wrapping_add(1)),
    });
    t.ttl = Some(joined.ttl);
    Ok(t)
}

/// A unicast UDP track, sent to the client's ports at the request's address.
fn setup_udp(
    ctx: &ServerContext,
    conn: &ConnContext,
    st: &mut ClientSession,
    track: usize,
    client: PortRange,
) -> Result<Transport, Response> {
    let peer_ip = conn.peer.ip();
    let Some(pair) = ctx.media_for(peer_ip) else {
        return Err(error(461, "no UDP media socket for this address family"));
    };
    let rtcp_port = client.rtcp.unwrap_or(client.rtp.wrapping_add(1));
    // Media goes only to the address the request came from: a client cannot
    // point us at a third party (no reflection/amplification).
    let rtp = SocketAddr::new(peer_ip, client.rtp);
    let rtcp = SocketAddr::new(peer_ip, rtcp_port);
    st.tracks.insert(track, TrackTransport::Udp { rtp, rtcp });
    let mut t = reply_transport(LowerTransport::Udp);
    t.destination = Some(ip_text(peer_ip));
    t.source = Some(ip_text(conn.local.ip()));
    t.client_port = Some(PortRange {
        rtp: client.rtp,
        rtcp: Some(rtcp_port),
    });
    t.server_port = Some(PortRange {
        rtp: pair.rtp_port,
        rtcp: Some(pair.rtcp_port),
    });
    Ok(t)
}

/// An interleaved track, on the client's RTSP connection (the channels it
/// asked for, else the first free pair).
fn setup_interleaved(
    conn: &ConnContext,
    st: &mut ClientSession,
    track: usize,
    channels: Option<ChannelRange>,
) -> Result<Transport, Response> {
    if st.conn.as_ref().is_some_and(|c| !c.same(&conn.out)) {
        return Err(error(
            455,
            "interleaved tracks of one session must share one connection",
        ));
    }
    let used: Vec<u8> = st
        .tracks
        .iter()
        .filter(|(t, _)| **t != track)
        .filter_map(|(_, tt)| match tt {
            TrackTransport::Interleaved {
                rtp_channel,
                rtcp_channel,
            } => Some([*rtp_channel, *rtcp_channel]),
            _ => None,
        })
        .flatten()
        .collect();
    let (rtp_ch, rtcp_ch) = match channels {
        Some(c) => (c.rtp, c.rtcp.unwrap_or(c.rtp.wrapping_add(1))),
        None => {
            let mut k = 0u8;
            while used.contains(&k) || used.contains(&(k + 1)) {
                k = match k.checked_add(2) {
                    Some(k) if k < 254 => k,
                    _ => break,
                };
            }
            (k, k + 1)
        }
    };
    if used.contains(&rtp_ch) || used.contains(&rtcp_ch) {
        return Err(error(
            461,
            "interleaved channels already in use in this session",
        ));
    }
    st.tracks.insert(
        track,
        TrackTransport::Interleaved {
            rtp_channel: rtp_ch,
            rtcp_channel: rtcp_ch,
        },
    );
    st.conn = Some(conn.out.clone());
    let mut t = reply_transport(LowerTransport::Tcp);
    t.destination = Some(ip_text(conn.peer.ip()));
    t.source = Some(ip_text(conn.local.ip()));
    t.interleaved = Some(ChannelRange {
        rtp: rtp_ch,
        rtcp: Some(rtcp_ch),
    });
    Ok(t)
}

/// A unicast RTP/AVP transport with no parameters yet.
fn reply_transport(lower: LowerTransport) -> Transport {
    Transport {
        cast: Some(Cast::Unicast),
        ..Transport::rtp_avp(lower)
    }
}

fn ip_text(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

/// The client RTCP addresses of a session's UDP tracks.
fn udp_rtcp_addrs(s: &client_sessions::ClientSession) -> Vec<SocketAddr> {
    s.tracks
        .values()
        .filter_map(|t| match t {
            TrackTransport::Udp { rtcp, .. } => Some(*rtcp),
            TrackTransport::Interleaved { .. } | TrackTransport::Multicast { .. } => None,
        })
        .collect()
}

/// Builds the sinks of a session's tracks.
fn sinks_of(ctx: &ServerContext, s: &client_sessions::ClientSession) -> Option<Vec<(usize, Sink)>> {
    s.tracks
        .iter()
        .filter(|(_, tt)| !matches!(tt, TrackTransport::Multicast { .. }))
        .map(|(track, tt)| {
            let sink = match *tt {
                TrackTransport::Udp { rtp, rtcp } => {
                    let pair = ctx.media_for(rtp.ip())?;
                    Sink::Udp {
                        rtp_socket: pair.rtp.clone(),
                        rtcp_socket: pair.rtcp.clone(),
                        rtp_addr: rtp,
                        rtcp_addr: rtcp,
                        refused: s.udp_refused.clone(),
                        gso: pair.gso.clone(),
                    }
                }
                TrackTransport::Interleaved {
                    rtp_channel,
                    rtcp_channel,
                } => Sink::Interleaved {
                    out: Arc::new(s.conn.clone()?),
                    rtp_channel,
                    rtcp_channel,
                },
                TrackTransport::Multicast { .. } => return None,
            };
            Some((*track, sink))
        })
        .collect()
}

/// What the stream calls when it has to drop this session by itself.
fn closer_for(ctx: &Arc<ServerContext>, id: &str, conn: Option<ConnOut>) -> Arc<Closer> {
    let ctx = Arc::downgrade(ctx);
    let id = id.to_string();
    Arc::new(Box::new(move || {
        if let Some(ctx) = ctx.upgrade() {
            ctx.sessions.remove(&id);
        }
        if let Some(c) = &conn {
            c.close();
        }
    }))
}

/// Restarts delivery to a playing session whose tracks changed (a SETUP added
/// one, a TEARDOWN removed one) and queues `resp`, the answer to that request,
/// first: like a PLAY answer, it goes out before the first packet the restart
/// sends (a sender report, the replay of the cached GOP), so a client never
/// gets media on a channel it has not been told about yet.
fn restart_delivery(
    ctx: &Arc<ServerContext>,
    conn: &ConnContext,
    cseq: Option<&str>,
    session: &SessionRef,
    now: Instant,
    resp: Response,
) {
    let mut resp = Some(resp);
    let st = client_sessions::lock(session);
    if st.is_multicast() {
        let tracks: Vec<usize> = st.tracks.keys().copied().collect();
        let closer = closer_for(ctx, &st.id, None);
        let (stream, sub, generation) = (st.stream.clone(), st.subscriber, st.generation);
        drop(st);
        // The group's delivery carries the media: the answer goes first.
        if let Some(r) = resp.take() {
            send(ctx, conn, cseq, r);
        }
        if let Some(mc) = &ctx.multicast {
            mc.play(&stream, sub, generation, &tracks, closer, now, |_| {});
        }
        return;
    }
    match sinks_of(ctx, &st) {
        Some(sinks) => {
            let closer = closer_for(ctx, &st.id, st.conn.clone());
            let (stream, sub, generation) = (st.stream.clone(), st.subscriber, st.generation);
            drop(st);
            stream.play(sub, generation, sinks, closer, now, |_| {
                if let Some(r) = resp.take() {
                    send(ctx, conn, cseq, r);
                }
            });
        }
        None => drop(st),
    }
    // Delivery did not restart (transport gone, tracks changed): answer anyway.
    if let Some(r) = resp {
        send(ctx, conn, cseq, r);
    }
}

/// Checks that a request URL names the session's stream (or one of its tracks).
fn url_matches_session(ctx: &ServerContext, req: &Request, stream_name: &str) -> bool {
    if req.uri == "*" {
        return true;
    }
    matches!(target::resolve(&req.uri, |n| ctx.streams.get(n).is_some()),
        Some(Target::Stream { name, .. }) if name == stream_name)
}

fn play(
    ctx: &Arc<ServerContext>,
    conn: &ConnContext,
    req: &Request,
    session: &SessionRef,
    cseq: Option<&str>,
    now: Instant,
) -> Option<Response> {
    let st = client_sessions::lock(session);
    if !url_matches_session(ctx, req, st.stream.name()) {
        return Some(error(404, "PLAY URL does not match the session's stream"));
    }
    if st.tracks.is_empty() {
        return Some(error(455, "PLAY before any SETUP"));
    }
    let multicast = st.is_multicast();
    let tracks: Vec<usize> = st.tracks.keys().copied().collect();
    let Some(sinks) = sinks_of(ctx, &st) else {
        return Some(error(454, "session transport is gone"));
    };
    let closer = closer_for(ctx, &st.id, st.conn.clone());
    let (stream, sub, generation, id) = (
        st.stream.clone(),
        st.subscriber,
        st.generation,
        st.id.clone(),
    );
    let client = client_info(conn, &st);
    drop(st);
    let base = base_url(conn, stream.name());
    // A live stream cannot seek: whatever Range was asked, it starts now.
    let range = Range::Npt {
        start: Some(0.0),
        end: None,
    }
    .to_string();
    let respond = |points: &[StartPoint]| {
        let infos: Vec<RtpInfo> = points
            .iter()
            .map(|p| RtpInfo {
                url: format!("{base}/track{}", p.track + 1),
                seq: Some(p.seq),
                rtptime: Some(p.rtptime),
            })
            .collect();
        let resp = Response::new(200)
            .with_header("Range", range.clone())
            .with_header("Session", id.clone())
            .with_header("RTP-Info", rtp_info::format_list(&infos));
        send(ctx, conn, cseq, resp);
    };
    let started = match (&ctx.multicast, multicast) {
        // A multicast client: the group's delivery (started by the first
        // one) carries its media.
        (Some(mc), true) => mc.play(&stream, sub, generation, &tracks, closer, now, respond),
        (None, true) => None,
        (_, false) => stream.play(sub, generation, sinks, closer, now, respond),
    };
    match started {
        Some(()) => {
            stream.set_client(sub, client);
            client_sessions::lock(session).state = SessionState::Playing;
            info!(session = %id, stream = %stream.name(), "client PLAY");
            None
        }
        None => {
            ctx.sessions.remove(&id);
            Some(error(454, "the stream's tracks changed; session closed"))
        }
    }
}

/// Who a client is for the admin port: its address, how its media goes
/// (multicast, else UDP when any track does) and its drop counters.
fn client_info(conn: &ConnContext, st: &client_sessions::ClientSession) -> ClientInfo {
    let udp = st
        .tracks
        .values()
        .any(|t| matches!(t, TrackTransport::Udp { .. }));
    let transport = if st.is_multicast() {
        ClientTransport::Multicast
    } else if udp {
        ClientTransport::Udp
    } else if conn.tunnelled {
        ClientTransport::Http
    } else if conn.secure {
        ClientTransport::Tls
    } else {
        ClientTransport::Tcp
    };
    ClientInfo {
        addr: conn.peer,
        transport,
        since: SystemTime::now(),
        udp_refused: udp.then(|| st.udp_refused.clone()),
        conn: st
            .conn
            .clone()
            .map(|c| Arc::new(c) as Arc<dyn relay::InterleavedQueue>),
    }
}

fn pause(ctx: &ServerContext, req: &Request, session: &SessionRef) -> Response {
    let mut st = client_sessions::lock(session);
    if !url_matches_session(ctx, req, st.stream.name()) {
        return error(404, "PAUSE URL does not match the session's stream");
    }
    match st.state {
        SessionState::Ready => return error(455, "PAUSE before PLAY"),
        SessionState::Paused => {}
        SessionState::Playing => {
            st.stream.stop(st.subscriber);
            if let (Some(mc), true) = (&ctx.multicast, st.is_multicast()) {
                mc.pause(&st.stream, st.subscriber);
            }
            st.state = SessionState::Paused;
            info!(session = %st.id, "client PAUSE");
        }
    }
    Response::new(200).with_header("Session", st.id.clone())
}

fn teardown(
    ctx: &Arc<ServerContext>,
    req: &Request,
    session: &SessionRef,
    restart: &mut Option<SessionRef>,
) -> Response {
    let (id, name) = {
        let st = client_sessions::lock(session);
        (st.id.clone(), st.stream.name().to_string())
    };
    match target::resolve(&req.uri, |n| ctx.streams.get(n).is_some()) {
        Some(Target::Stream {
            name: n,
            track: Some(t),
        }) if n == name => {
            let mut st = client_sessions::lock(session);
            st.tracks.remove(&t);
            if !st.tracks.is_empty() {
                // Per-track TEARDOWN: the rest of the session goes on.
                let playing = st.state == SessionState::Playing;
                let rtcp_addrs = udp_rtcp_addrs(&st);
                drop(st);
                ctx.sessions.index_rtcp(&id, &rtcp_addrs);
                if playing {
                    // The rest of the session starts again (after this answer).
                    *restart = Some(session.clone());
                }
                return Response::new(200).with_header("Session", id);
            }
        }
        Some(Target::Stream {
            name: n,
            track: None,
        }) if n == name => {}
        Some(Target::Server) => {}
        _ => return error(404, "TEARDOWN URL does not match the session's stream"),
    }
    ctx.sessions.remove(&id);
    info!(session = %id, "client TEARDOWN");
    Response::new(200)
}

fn parameter(ctx: &ServerContext, req: &Request, session: Option<&SessionRef>) -> Response {
    if session.is_none() && req.uri != "*" {
        // Without a session, the URL must at least name something we serve.
        if !matches!(
            target::resolve(&req.uri, |n| ctx.streams.get(n).is_some()),
            Some(Target::Stream { .. })
        ) {
            return error(404, "parameter request for an unknown stream");
        }
    }
    let mut resp = if req.method == Method::SetParameter
        && !req.body.iter().all(|b| b.is_ascii_whitespace())
    {
        // We have no settable parameters.
        error(451, "SET_PARAMETER with parameters")
    } else {
        Response::new(200)
    };
    if let Some(s) = session {
        resp = resp.with_header("Session", client_sessions::lock(s).id.clone());
    }
    resp
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
