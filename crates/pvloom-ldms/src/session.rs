//! One zap `sock` connection's session, sans-I/O: the three-frame handshake with the
//! rail connect messages, frame decoding with ldmsd's limits, and the outbound queue.
//!
//! Both the active side (an LDMS client, an aggregator's producer) and the passive side
//! (a daemon serving sets) run a [`Session`]; the set protocol above it sees only
//! [`SessionEvent`]s and sends [`Msg`]s. A session never reads a clock: the handshake and
//! idle deadlines are compared with the `now` it is given.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};

use crate::zap::{Connect, Frame, FrameDecoder, Msg, RailConnMsg, ZapError};

/// Room made in the outbound buffer when it runs out: the driver takes the buffer whole
/// and leaves an empty one, and growing that from nothing frame by frame copied the
/// queue over and over.
const OUT_RESERVE: usize = 16 * 1024;
/// Capacity the outbound buffer keeps once it is drained; a burst that grew it beyond
/// gives the memory back rather than holding it for the connection's lifetime.
const OUT_KEEP: usize = 256 * 1024;

/// Which side of the handshake this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends CONNECT, expects ACCEPTED or REJECTED, answers ACK_ACCEPTED.
    Active,
    /// Expects CONNECT, answers ACCEPTED (or REJECTED), expects ACK_ACCEPTED.
    Passive,
}

/// Settings of one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The rail connect message this side sends (pid, rail generation, message service).
    pub conn_msg: RailConnMsg,
    /// Auth plugin names this side accepts from a connecting peer (passive side).
    pub accept_auth: Vec<String>,
    /// Close if the handshake has not finished this long after the session began; also
    /// bounds a peer that connects and sends nothing.
    pub handshake_timeout: Duration,
    /// Frames larger than this (READ_RESP and WRITE_REQ excepted) close the connection.
    pub max_frame_len: usize,
    /// Limit for READ_RESP and WRITE_REQ frames.
    pub max_bulk_len: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            conn_msg: RailConnMsg::new(std::process::id(), 1, false),
            accept_auth: vec!["none".into()],
            handshake_timeout: Duration::from_secs(10),
            max_frame_len: crate::zap::MAX_FRAME_LEN,
            max_bulk_len: crate::zap::DEFAULT_MAX_BULK_LEN,
        }
    }
}

/// What the session reports upward.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// The handshake finished; `peer` is the other side's rail connect message.
    Connected {
        /// The peer's rail connect message.
        peer: RailConnMsg,
    },
    /// The peer refused the connection (active side), with its reject data as text.
    Rejected {
        /// The reject data, lossily as UTF-8.
        reason: String,
    },
    /// A frame after the handshake (SENDRECV, RENDEZVOUS, READ_REQ/RESP, WRITE_REQ/RESP).
    Frame(Frame),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The byte stream broke zap's framing or limits.
    #[error("zap framing: {0}")]
    Zap(#[from] ZapError),
    /// A frame that does not belong at this point (e.g. a second CONNECT).
    #[error("unexpected {0} frame during {1}")]
    Unexpected(&'static str, &'static str),
    /// The peer's CONNECT or ACCEPTED is not something this side speaks.
    #[error("incompatible peer: {0}")]
    Incompatible(String),
    /// The peer asked for an auth plugin this side does not offer (the REJECTED was sent).
    #[error("peer asked for auth {0:?}, which is not offered")]
    AuthNotOffered(String),
    /// The peer refused the connection.
    #[error("rejected by the peer: {0}")]
    Rejected(String),
    /// The handshake did not finish in time.
    #[error("handshake not finished within {0:?}")]
    HandshakeTimeout(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Active: CONNECT sent. Passive: waiting for CONNECT.
    Opening,
    /// Passive: ACCEPTED sent, waiting for ACK_ACCEPTED.
    AwaitAck,
    Open,
    /// Closing: nothing more is read; queued bytes (a REJECTED) still go out.
    Closing,
}

/// One connection's zap session.
#[derive(Debug)]
pub struct Session {
    role: Role,
    config: SessionConfig,
    state: State,
    decoder: FrameDecoder,
    out: BytesMut,
    events: VecDeque<SessionEvent>,
    error: Option<SessionError>,
    deadline: Option<Instant>,
    next_xid: u32,
    peer: Option<RailConnMsg>,
}

impl Session {
    /// Begin a session at `now`; an active one queues its CONNECT at once.
    pub fn new(role: Role, config: SessionConfig, now: Instant) -> Session {
        let decoder = FrameDecoder::with_limits(config.max_frame_len, config.max_bulk_len);
        let mut s = Session {
            role,
            deadline: Some(now + config.handshake_timeout),
            config,
            state: State::Opening,
            decoder,
            out: BytesMut::new(),
            events: VecDeque::new(),
            error: None,
            next_xid: 1,
            peer: None,
        };
        if role == Role::Active {
            let c = Connect::new(&s.config.conn_msg);
            s.send(Msg::Connect(c));
        }
        s
    }

    /// Which side this is.
    pub fn role(&self) -> Role {
        self.role
    }
    /// True once the handshake finished and until the session ends.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }
    /// The peer's rail connect message, once known.
    pub fn peer(&self) -> Option<&RailConnMsg> {
        self.peer.as_ref()
    }
    /// Bytes queued and not yet taken by [`poll_transmit`](Self::poll_transmit).
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// Queue a frame; returns the zap xid it carries.
    pub fn send(&mut self, msg: Msg) -> u32 {
        self.send_with_ctxt(msg, 0)
    }

    /// Queue a frame with a header ctxt (READ_REQ carries the requester's cookie, which
    /// READ_RESP echoes).
    pub fn send_with_ctxt(&mut self, msg: Msg, ctxt: u64) -> u32 {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        let frame = Frame { reserved: 0, xid, ctxt, msg };
        if self.out.capacity() - self.out.len() < frame.encoded_len() {
            self.out.reserve(frame.encoded_len().max(OUT_RESERVE));
        }
        frame.encode(&mut self.out);
        xid
    }

    /// Queue a SENDRECV of `len` data bytes that `write` appends straight into the
    /// outbound buffer (a message encoded in place, not built and then copied); returns
    /// the zap xid it carries.
    pub fn send_recv_with(&mut self, len: usize, write: impl FnOnce(&mut BytesMut)) -> u32 {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        let frame_len = crate::zap::HEADER_LEN + 4 + len;
        self.out.reserve(frame_len.max(OUT_RESERVE));
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        crate::zap::Header {
            msg_type: crate::zap::MsgType::SendRecv,
            reserved: 0,
            len: u32::try_from(frame_len).unwrap_or(u32::MAX),
            xid,
            ctxt: 0,
        }
        .encode(&mut self.out);
        self.out.put_u32(len32);
        let start = self.out.len();
        write(&mut self.out);
        debug_assert_eq!(self.out.len() - start, len, "send_recv_with wrote another length than it said");
        xid
    }

    /// Queue a reply frame that must carry the request's xid and ctxt (READ_RESP,
    /// WRITE_RESP).
    pub fn reply(&mut self, xid: u32, ctxt: u64, msg: Msg) {
        Frame { reserved: 0, xid, ctxt, msg }.encode(&mut self.out);
    }

    /// Queue a READ_RESP for the request `xid`/`ctxt` with `data` copied straight in.
    pub fn reply_read(&mut self, xid: u32, ctxt: u64, status: u16, data: &[u8]) {
        Frame::encode_read_resp(xid, ctxt, status, data, &mut self.out);
    }

    /// Bytes received at `now`.
    pub fn handle_input(&mut self, _now: Instant, data: &[u8]) {
        if self.error.is_some() || self.state == State::Closing {
            return;
        }
        if let Err(e) = self.decoder.push(data) {
            return self.fail(e.into());
        }
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => {
                    if let Err(e) = self.on_frame(frame) {
                        return self.fail(e);
                    }
                    if self.state == State::Closing {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => return self.fail(e.into()),
            }
        }
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), SessionError> {
        let phase = match self.state {
            State::Opening => "the handshake",
            State::AwaitAck => "the handshake (awaiting ACK_ACCEPTED)",
            State::Open | State::Closing => "the session",
        };
        match (self.state, self.role, frame.msg) {
            (State::Opening, Role::Passive, Msg::Connect(c)) => self.on_connect(&c),
            (State::Opening, Role::Active, Msg::Accepted(data)) => {
                let peer = RailConnMsg::decode(&data)
                    .map_err(|e| SessionError::Incompatible(format!("ACCEPTED data: {e}")))?;
                self.send(Msg::AckAccepted(Default::default()));
                self.open(peer);
                Ok(())
            }
            (State::Opening, Role::Active, Msg::Rejected(data)) => {
                let reason = String::from_utf8_lossy(&data).trim_end_matches('\0').to_string();
                self.events.push_back(SessionEvent::Rejected { reason: reason.clone() });
                Err(SessionError::Rejected(reason))
            }
            (State::AwaitAck, Role::Passive, Msg::AckAccepted(_)) => {
                let peer = self.peer.take().expect("CONNECT seen");
                self.open(peer);
                Ok(())
            }
            (State::Open, _, msg @ (Msg::Connect(_) | Msg::Accepted(_) | Msg::Rejected(_) | Msg::AckAccepted(_))) => {
                Err(SessionError::Unexpected(type_name(&msg), phase))
            }
            (State::Open, _, msg) => {
                self.events.push_back(SessionEvent::Frame(Frame { msg, ..frame }));
                Ok(())
            }
            (_, _, msg) => Err(SessionError::Unexpected(type_name(&msg), phase)),
        }
    }

    fn on_connect(&mut self, c: &Connect) -> Result<(), SessionError> {
        if !c.is_compatible() {
            return Err(SessionError::Incompatible(format!(
                "zap version {:?}, signature {:?}",
                c.version,
                String::from_utf8_lossy(&c.signature)
            )));
        }
        let peer =
            RailConnMsg::decode(&c.data).map_err(|e| SessionError::Incompatible(format!("CONNECT data: {e}")))?;
        if peer.ldms_version[..2] != crate::zap::LDMS_VERSION[..2] {
            let why = format!("LDMS version {:?} (this side speaks 4.2)", peer.ldms_version);
            self.reject(&why);
            return Err(SessionError::Incompatible(why));
        }
        let auth = String::from_utf8_lossy(peer.auth_name()).to_string();
        if !self.config.accept_auth.contains(&auth) {
            self.reject(&format!("auth {auth:?} is not offered"));
            return Err(SessionError::AuthNotOffered(auth));
        }
        let mut mine = self.config.conn_msg;
        // The accepting side answers with the connecting side's rail generation.
        mine.rail_gn = peer.rail_gn;
        self.send(Msg::Accepted(mine.to_bytes()));
        self.peer = Some(peer);
        self.state = State::AwaitAck;
        Ok(())
    }

    fn reject(&mut self, why: &str) {
        let mut data = why.as_bytes().to_vec();
        data.push(0);
        self.send(Msg::Rejected(data.into()));
    }

    fn open(&mut self, peer: RailConnMsg) {
        self.state = State::Open;
        self.deadline = None;
        self.peer = Some(peer);
        self.events.push_back(SessionEvent::Connected { peer });
    }

    fn fail(&mut self, e: SessionError) {
        if self.error.is_none() {
            tracing::debug!("zap session ends: {e}");
            self.error = Some(e);
        }
        self.state = State::Closing;
        self.deadline = None;
    }

    /// The handshake deadline passed (compared with `now`).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(d) = self.deadline
            && now >= d
        {
            self.fail(SessionError::HandshakeTimeout(self.config.handshake_timeout));
        }
    }

    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Move up to about `room` queued bytes to `out` (whole queue if it fits; a frame may
    /// be split, the stream is a byte stream).
    pub fn poll_transmit(&mut self, room: usize, out: &mut BytesMut) {
        let n = room.min(self.out.len());
        if n == self.out.len() && out.is_empty() {
            std::mem::swap(out, &mut self.out);
        } else {
            out.extend_from_slice(&self.out.split_to(n));
        }
        if self.out.is_empty() && self.out.capacity() > OUT_KEEP {
            self.out = BytesMut::new();
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The error that ended the session, once its events were taken. Bytes still queued
    /// (a REJECTED) stay for the driver's last write before it closes.
    pub fn poll_error(&mut self) -> Option<SessionError> {
        if self.events.is_empty() { self.error.take() } else { None }
    }

    /// True once the session failed (nothing more is read).
    pub fn is_failed(&self) -> bool {
        self.state == State::Closing
    }
}

fn type_name(m: &Msg) -> &'static str {
    match m {
        Msg::Connect(_) => "CONNECT",
        Msg::SendRecv(_) => "SENDRECV",
        Msg::Rendezvous(_) => "RENDEZVOUS",
        Msg::ReadReq(_) => "READ_REQ",
        Msg::ReadResp(_) => "READ_RESP",
        Msg::WriteReq(_) => "WRITE_REQ",
        Msg::WriteResp(_) => "WRITE_RESP",
        Msg::Accepted(_) => "ACCEPTED",
        Msg::Rejected(_) => "REJECTED",
        Msg::AckAccepted(_) => "ACK_ACCEPTED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pump(a: &mut Session, b: &mut Session, now: Instant) {
        for _ in 0..8 {
            let mut buf = BytesMut::new();
            a.poll_transmit(usize::MAX, &mut buf);
            b.handle_input(now, &buf);
            let mut buf = BytesMut::new();
            b.poll_transmit(usize::MAX, &mut buf);
            a.handle_input(now, &buf);
        }
    }

    #[test]
    fn a_drained_outbound_buffer_does_not_keep_a_burst_capacity() {
        let now = Instant::now();
        let mut c = Session::new(Role::Active, SessionConfig::default(), now);
        let mut s = Session::new(Role::Passive, SessionConfig::default(), now);
        pump(&mut c, &mut s, now);
        let data = vec![7u8; 4096];
        for i in 0..512 {
            s.reply_read(i, 0, 0, &data);
        }
        // Room beyond the queue, as a burst's doubling leaves it.
        s.out.reserve(2 * OUT_KEEP);
        // Taken in pieces, into a send buffer that still holds bytes (the driver's).
        let mut out = BytesMut::from(&b"x"[..]);
        while s.queued() > 0 {
            s.poll_transmit(64 * 1024, &mut out);
            out.truncate(1);
        }
        assert!(s.out.capacity() <= OUT_KEEP, "capacity kept: {}", s.out.capacity());
    }

    #[test]
    fn handshake_both_ways() {
        let now = Instant::now();
        let mut c = Session::new(Role::Active, SessionConfig::default(), now);
        let mut s = Session::new(Role::Passive, SessionConfig::default(), now);
        pump(&mut c, &mut s, now);
        assert!(c.is_open() && s.is_open());
        assert!(matches!(c.poll_event(), Some(SessionEvent::Connected { .. })));
        assert!(matches!(s.poll_event(), Some(SessionEvent::Connected { .. })));
        assert_eq!((c.poll_timeout(), s.poll_timeout()), (None, None));
        c.send(Msg::SendRecv(Bytes::from_static(b"hello")));
        pump(&mut c, &mut s, now);
        match s.poll_event() {
            Some(SessionEvent::Frame(f)) => assert_eq!(f.msg, Msg::SendRecv(Bytes::from_static(b"hello"))),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn the_recorded_handshake_is_accepted() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ldms-captures/ls-l-meminfo");
        let c2s = std::fs::read(format!("{dir}/c2s.bin")).expect("captures");
        let now = Instant::now();
        let mut s = Session::new(Role::Passive, SessionConfig::default(), now);
        s.handle_input(now, &c2s[..124]);
        assert!(s.is_open(), "{:?}", s.poll_error());
        let mut out = BytesMut::new();
        s.poll_transmit(usize::MAX, &mut out);
        assert_eq!(out.len(), 88, "ACCEPTED");
    }

    #[test]
    fn unknown_auth_is_rejected_with_a_reason() {
        let now = Instant::now();
        let mut cfg = SessionConfig::default();
        cfg.conn_msg.auth_name = *b"munge\0\0\0\0\0\0\0\0\0\0\0";
        let mut c = Session::new(Role::Active, cfg, now);
        let mut s = Session::new(Role::Passive, SessionConfig::default(), now);
        pump(&mut c, &mut s, now);
        assert!(matches!(s.poll_error(), Some(SessionError::AuthNotOffered(a)) if a == "munge"));
        match c.poll_event() {
            Some(SessionEvent::Rejected { reason }) => assert!(reason.contains("munge"), "{reason}"),
            e => panic!("{e:?}"),
        }
        assert!(matches!(c.poll_error(), Some(SessionError::Rejected(_))));
    }

    #[test]
    fn silent_peer_times_out_and_garbage_fails() {
        let now = Instant::now();
        let mut s = Session::new(Role::Passive, SessionConfig::default(), now);
        s.handle_timeout(now + Duration::from_secs(1));
        assert!(s.poll_error().is_none());
        s.handle_timeout(now + Duration::from_secs(10));
        assert!(matches!(s.poll_error(), Some(SessionError::HandshakeTimeout(_))));
        let mut s = Session::new(Role::Passive, SessionConfig::default(), now);
        s.handle_input(now, &[0xff; 64]);
        assert!(matches!(s.poll_error(), Some(SessionError::Zap(_))));
        let mut s = Session::new(Role::Passive, SessionConfig::default(), now);
        let mut f = BytesMut::new();
        Frame::new(1, Msg::SendRecv(Bytes::new())).encode(&mut f);
        s.handle_input(now, &f);
        assert!(matches!(s.poll_error(), Some(SessionError::Unexpected("SENDRECV", _))));
    }
}
