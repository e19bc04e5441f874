//! Bad input to the message service of a `ServerConn`, sans-I/O on a fake clock, several
//! connections on one `MsgBus`: malformed parts, a part of an unknown message, lengths that
//! disagree, an over-limit message, a MSG_SUB flood, a subscriber that never returns
//! credit. Each ends in a clear error or a closed connection, and a healthy subscriber and
//! publisher on the same bus keep working.

mod server_util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use pvloom_core::endpoint::{CloseReason, StreamEndpoint};
use pvloom_ldms::bus::{BusConfig, MsgBus};
use pvloom_ldms::msg::{self, LdmsAddr, MsgHeader, MsgPart, MsgSub, MsgType, split_message};
use pvloom_ldms::request::{self, Message, Request, RequestBody};
use pvloom_ldms::server::{ServerConfig, ServerConn, SetRegistry};
use pvloom_ldms::session::{Role, Session, SessionConfig};
use pvloom_ldms::zap::{Frame, Msg};
use server_util::{Client, req_msg};

struct Peer {
    client: Client,
    server: ServerConn,
    closed: Option<CloseReason>,
}

/// Client/server pairs on one bus, on one fake clock.
struct Net {
    now: Instant,
    bus: Arc<MsgBus>,
    config: ServerConfig,
    peers: Vec<Peer>,
}

impl Net {
    fn new(bus_config: BusConfig, config: ServerConfig) -> Net {
        let bus = MsgBus::new(bus_config);
        let config = ServerConfig { bus: Some(bus.clone()), ..config };
        Net { now: Instant::now(), bus, config, peers: Vec::new() }
    }

    fn connect_with(&mut self, session: SessionConfig) -> usize {
        let client =
            Client { session: Session::new(Role::Active, session, self.now), got: Vec::new(), send_connect: true };
        let server = ServerConn::new(SetRegistry::new(), self.config.clone(), self.now);
        self.peers.push(Peer { client, server, closed: None });
        self.drive();
        let i = self.peers.len() - 1;
        assert!(self.peers[i].client.session.is_open());
        i
    }

    fn connect(&mut self) -> usize {
        self.connect_with(SessionConfig::default())
    }

    /// Moves bytes both ways on every pair until nothing moves.
    fn drive(&mut self) {
        let now = self.now;
        for _ in 0..1000 {
            let mut moved = false;
            for p in &mut self.peers {
                if p.closed.is_some() {
                    continue;
                }
                let mut b = BytesMut::new();
                p.client.poll_transmit(now, usize::MAX, &mut b);
                if !b.is_empty() {
                    moved = true;
                    p.server.handle_input(now, &b);
                }
                let mut b = BytesMut::new();
                p.server.poll_transmit(now, usize::MAX, &mut b);
                if !b.is_empty() {
                    moved = true;
                    p.client.handle_input(now, &b);
                }
                while p.server.poll_event().is_some() {}
                if let Some(r) = p.server.poll_close() {
                    p.server.handle_closed(now, &r);
                    p.closed = Some(r);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the network does not settle");
    }

    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            let next = self.peers.iter().filter(|p| p.closed.is_none()).filter_map(|p| p.server.poll_timeout()).min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for p in self.peers.iter_mut().filter(|p| p.closed.is_none()) {
                        if p.server.poll_timeout().is_some_and(|t| t <= now) {
                            p.server.handle_timeout(now);
                        }
                    }
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = end;
        self.drive();
    }

    fn send(&mut self, i: usize, m: Msg) {
        self.peers[i].client.send(m);
        self.drive();
    }

    fn send_req(&mut self, i: usize, r: &Request) {
        self.send(i, req_msg(r));
    }

    fn subscribe(&mut self, i: usize, pattern: &str, is_regex: bool) {
        let sub = MsgSub { is_regex, pattern: Bytes::copy_from_slice(pattern.as_bytes()), rate: -1 };
        self.send_req(i, &sub.to_request(7, false).unwrap());
    }

    fn publish(&mut self, i: usize, name: &str, data: &[u8], gn: u64) {
        for part in split_message(&header(gn), name.as_bytes(), data, msg::PART_PAYLOAD_MAX).unwrap() {
            self.send_req(i, &part.to_request());
        }
    }

    fn take(&mut self, i: usize) -> Vec<Frame> {
        self.peers[i].client.take()
    }

    fn closed(&self, i: usize) -> Option<&CloseReason> {
        self.peers[i].closed.as_ref()
    }
}

fn header(gn: u64) -> MsgHeader {
    MsgHeader {
        src: LdmsAddr::default(),
        msg_gn: gn,
        msg_type: MsgType::String,
        uid: 0,
        gid: 0,
        perm: 0o444,
        tag_hash: msg::tag_hash(b"x"),
        hop_cnt: 0,
        hops: [msg::Hop::default()].into_iter().collect(),
    }
}

fn message(f: &Frame) -> Option<Message> {
    match &f.msg {
        Msg::SendRecv(d) => request::decode(d).ok(),
        _ => None,
    }
}

/// Names of the MSG deliveries in `frames`.
fn delivered(frames: &[Frame]) -> Vec<String> {
    let mut reasm = msg::Reassembler::default();
    let mut out = Vec::new();
    for f in frames {
        if let Some(m) = message(f)
            && let Some(Ok(msg::MsgWire::Part { part: p, .. })) = msg::interpret(&m)
            && let Ok(Some(m)) = reasm.push(&p)
        {
            out.push(String::from_utf8_lossy(&m.name).into_owned());
        }
    }
    out
}

fn send_quotas(frames: &[Frame]) -> Vec<(u32, i32)> {
    frames
        .iter()
        .filter_map(|f| match message(f)? {
            Message::Request(Request { body: RequestBody::SendQuota { quota, rc }, .. }) => Some((quota, rc)),
            _ => None,
        })
        .collect()
}

fn sub_replies(frames: &[Frame]) -> Vec<u32> {
    frames
        .iter()
        .filter_map(|f| match message(f)? {
            Message::Reply(r) if r.body.cmd() == request::CMD_MSG_SUB_REPLY => Some(r.rc),
            _ => None,
        })
        .collect()
}

/// A healthy subscriber and publisher on the net; `check` proves they still work.
struct Healthy {
    sub: usize,
    publ: usize,
    gn: u64,
}

impl Healthy {
    fn new(net: &mut Net) -> Healthy {
        let sub = net.connect();
        net.subscribe(sub, "ok", false);
        assert_eq!(sub_replies(&net.take(sub)), [0]);
        let publ = net.connect();
        Healthy { sub, publ, gn: 0 }
    }

    fn check(&mut self, net: &mut Net) {
        net.publish(self.publ, "ok", b"still here", self.gn);
        self.gn += 1;
        assert_eq!(delivered(&net.take(self.sub)), ["ok"], "the healthy subscriber got it");
        assert_eq!(send_quotas(&net.take(self.publ)), [(13, 0)], "the healthy publisher got its credit");
        assert!(net.closed(self.sub).is_none() && net.closed(self.publ).is_none());
    }
}

fn msg_req(body: Bytes) -> Request {
    Request::new(0, RequestBody::Other { cmd: request::CMD_MSG, body })
}

fn assert_protocol_close(net: &Net, i: usize, what: &str) {
    match net.closed(i) {
        Some(CloseReason::Protocol(why)) => eprintln!("{what}: closed: {why}"),
        other => panic!("{what}: expected a protocol close, got {other:?}"),
    }
}

#[test]
fn bad_part_headers_close_that_connection_only() {
    let mut net = Net::new(BusConfig::default(), ServerConfig::default());
    let mut ok = Healthy::new(&mut net);
    for (what, body) in [
        ("empty part", Bytes::new()),
        ("short part header", Bytes::from_static(&[0; 31])),
        ("first part shorter than the message header", {
            let mut b = BytesMut::new();
            b.put_bytes(0, 28);
            b.put_u32_le(2);
            b.put_bytes(0, 100);
            b.freeze()
        }),
    ] {
        let bad = net.connect();
        net.send_req(bad, &msg_req(body));
        assert_protocol_close(&net, bad, what);
        ok.check(&mut net);
    }
}

#[test]
fn a_non_first_part_of_an_unknown_message_closes() {
    let mut net = Net::new(BusConfig::default(), ServerConfig::default());
    let mut ok = Healthy::new(&mut net);
    let bad = net.connect();
    let part = MsgPart {
        src: LdmsAddr::default(),
        msg_gn: 42,
        more: false,
        first: false,
        reserved: 0,
        payload: Bytes::from_static(b"orphan"),
    };
    net.send_req(bad, &part.to_request());
    assert_protocol_close(&net, bad, "non-first part");
    ok.check(&mut net);
}

#[test]
fn parts_whose_lengths_disagree_close() {
    let mut net = Net::new(BusConfig::default(), ServerConfig::default());
    let mut ok = Healthy::new(&mut net);
    // One part, but its header's msg_len says more than it carries.
    let mut parts = split_message(&header(0), b"ok", &[b'a'; 1000], 450).unwrap();
    assert!(parts.len() > 1);
    parts[0].more = false;
    let bad = net.connect();
    net.send_req(bad, &parts[0].to_request());
    assert_protocol_close(&net, bad, "short message");
    // More parts than msg_len.
    let mut parts = split_message(&header(0), b"ok", &[b'a'; 1000], 450).unwrap();
    let last = parts.len() - 1;
    parts[last].more = true;
    let mut extra = parts[last].clone();
    extra.more = false;
    parts.push(extra);
    let bad = net.connect();
    for p in &parts {
        if net.closed(bad).is_none() {
            net.send_req(bad, &p.to_request());
        }
    }
    assert_protocol_close(&net, bad, "overrun");
    assert!(delivered(&net.take(ok.sub)).is_empty(), "no partial message went out");
    ok.check(&mut net);
}

#[test]
fn an_over_limit_message_closes() {
    let config = ServerConfig { max_msg: 4096, ..ServerConfig::default() };
    let mut net = Net::new(BusConfig::default(), config);
    let mut ok = Healthy::new(&mut net);
    let bad = net.connect();
    net.publish(bad, "ok", &[b'x'; 8192], 0);
    assert_protocol_close(&net, bad, "over-limit message");
    assert!(delivered(&net.take(ok.sub)).is_empty());
    ok.check(&mut net);
}

#[test]
fn a_msg_sub_flood_gets_enospc_and_memory_stays_bounded() {
    let mut net = Net::new(BusConfig { max_subs_per_link: 16, ..BusConfig::default() }, ServerConfig::default());
    let mut ok = Healthy::new(&mut net);
    let flood = net.connect();
    for i in 0..2000 {
        net.subscribe(flood, &format!("name-{i}"), false);
    }
    let rcs = sub_replies(&net.take(flood));
    assert_eq!(rcs.len(), 2000, "every MSG_SUB answered");
    assert!(rcs[..16].iter().all(|&rc| rc == 0));
    assert!(rcs[16..].iter().all(|&rc| rc == 28), "ENOSPC beyond the limit");
    assert!(net.closed(flood).is_none());
    // The bus holds the 16 plus the healthy one.
    let subs: usize = net.bus.stats().clients.len();
    assert!(subs <= 17, "{subs} subscriptions kept");
    ok.check(&mut net);
}

#[test]
fn a_subscriber_that_never_returns_credit_is_closed_after_the_credit_timeout() {
    let config = ServerConfig { credit_timeout: Duration::from_secs(30), ..ServerConfig::default() };
    let mut net = Net::new(BusConfig::default(), config);
    let mut ok = Healthy::new(&mut net);
    let mut session = SessionConfig::default();
    session.conn_msg.recv_quota = 100;
    let stingy = net.connect_with(session);
    net.subscribe(stingy, "ok", false);
    assert_eq!(sub_replies(&net.take(stingy)), [0]);
    // Two messages of 63 bytes: the first fits its 100 bytes of credit, the second waits.
    for _ in 0..2 {
        net.publish(ok.publ, "ok", &[b'z'; 60], ok.gn);
        ok.gn += 1;
    }
    assert_eq!(delivered(&net.take(stingy)), ["ok"]);
    assert_eq!(delivered(&net.take(ok.sub)), ["ok", "ok"], "the healthy subscriber is not held up");
    net.take(ok.publ);
    net.advance(Duration::from_secs(29));
    assert!(net.closed(stingy).is_none(), "not before the timeout");
    net.advance(Duration::from_secs(2));
    match net.closed(stingy) {
        Some(r) => eprintln!("closed: {r:?}"),
        None => panic!("the stingy subscriber is still open"),
    }
    // Its held message was released: the publisher has all its credit.
    assert_eq!(send_quotas(&net.take(ok.publ)), [(63, 0)]);
    ok.check(&mut net);
}
