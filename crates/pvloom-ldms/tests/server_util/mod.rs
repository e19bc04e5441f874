//! Helpers shared by the server tests: a small set, a hand-built client.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pvloom_core::Runtime;
use pvloom_core::endpoint::{CloseReason, StreamEndpoint};
use pvloom_ldms::request::{
    self, Message, PushParam, RENDEZVOUS_PUSH, RendezvousBody, RendezvousMsg, Reply, Request, RequestBody,
};
use pvloom_ldms::server::{LdmsServer, ServerConfig, SetRegistry};
use pvloom_ldms::session::{Role, Session, SessionConfig, SessionEvent};
use pvloom_ldms::set::{LocalSet, MetricSpec, Schema, SetInfo, ValueType};
use pvloom_ldms::zap::{self, Frame, Msg, ReadReq, Rendezvous};

/// A set `prod/<name>` of schema `test`: meta `component_id`, data `a` (u64) and `arr` (u32[4]).
pub fn small_set(name: &str, uid: u32, gid: u32, perm: u32) -> LocalSet {
    let schema = Schema {
        name: "test".into(),
        metrics: vec![
            MetricSpec::new("component_id", ValueType::U64, 1, true),
            MetricSpec::new("a", ValueType::U64, 1, false),
            MetricSpec::new("arr", ValueType::U32Array, 4, false),
        ],
        digest: None,
        meta_sz: None,
        heap_sz: None,
    };
    let info = SetInfo { producer: "prod".into(), instance: name.into(), uid, gid, perm, meta_gn: 1 };
    LocalSet::new(&schema, &info).unwrap()
}

/// An SENDRECV frame body of `req`.
pub fn req_msg(req: &Request) -> Msg {
    let mut b = BytesMut::new();
    req.encode(&mut b);
    Msg::SendRecv(b.freeze())
}

/// A push registration RENDEZVOUS for the owner's `set_id`.
pub fn push_msg(set_id: u64, flags: u32) -> Msg {
    let m = RendezvousMsg {
        xid: 0,
        body: RendezvousBody::Push(PushParam { lookup_set_id: set_id, push_set_id: set_id + 100, flags }),
    };
    let mut b = BytesMut::new();
    m.encode(&mut b).unwrap();
    debug_assert_eq!(RENDEZVOUS_PUSH, 2);
    Msg::Rendezvous(Rendezvous { map_key: 9, access: 3, addr: 0x1000, len: 0, msg: b.freeze() })
}

/// A READ_REQ.
pub fn read_msg(map_key: u32, src_ptr: u64, len: u32) -> Msg {
    Msg::ReadReq(ReadReq { map_key, src_ptr, len })
}

/// The reply inside a SENDRECV frame.
pub fn reply_of(f: &Frame) -> Option<Reply> {
    match &f.msg {
        Msg::SendRecv(d) => match request::decode(d).ok()? {
            Message::Reply(r) => Some(r),
            Message::Request(_) => None,
        },
        _ => None,
    }
}

/// The request inside a SENDRECV frame.
pub fn request_of(f: &Frame) -> Option<Request> {
    match &f.msg {
        Msg::SendRecv(d) => match request::decode(d).ok()? {
            Message::Request(r) => Some(r),
            Message::Reply(_) => None,
        },
        _ => None,
    }
}

/// A DIR request.
pub fn dir(xid: u64, flags: u32) -> Msg {
    req_msg(&Request::new(xid, RequestBody::Dir { flags }))
}

/// A LOOKUP request.
pub fn lookup(xid: u64, flags: u32, path: &str) -> Msg {
    req_msg(&Request::new(xid, RequestBody::Lookup { flags, path: Bytes::copy_from_slice(path.as_bytes()) }))
}

/// A client endpoint for the harness: a zap session that keeps every frame received.
pub struct Client {
    pub session: Session,
    pub got: Vec<Frame>,
    pub send_connect: bool,
}

impl Client {
    pub fn new(now: Instant) -> Client {
        Client {
            session: Session::new(Role::Active, SessionConfig::default(), now),
            got: Vec::new(),
            send_connect: true,
        }
    }
    pub fn send(&mut self, msg: Msg) -> u32 {
        self.session.send(msg)
    }
    pub fn send_ctxt(&mut self, msg: Msg, ctxt: u64) -> u32 {
        self.session.send_with_ctxt(msg, ctxt)
    }
    pub fn take(&mut self) -> Vec<Frame> {
        std::mem::take(&mut self.got)
    }
}

impl StreamEndpoint for Client {
    type Event = ();
    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.session.handle_input(now, data);
        while let Some(e) = self.session.poll_event() {
            if let SessionEvent::Frame(f) = e {
                self.got.push(f);
            }
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
    }
    fn poll_transmit(&mut self, _now: Instant, room: usize, out: &mut BytesMut) {
        if self.send_connect {
            self.session.poll_transmit(room, out);
        }
    }
    fn poll_event(&mut self) -> Option<()> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn poll_close(&mut self) -> Option<CloseReason> {
        None
    }
}

/// The frame limit, for oversize tests.
pub const MAX_FRAME: usize = zap::MAX_FRAME_LEN;

/// A set server on 127.0.0.1 (any free port) over a runtime of two I/O threads.
pub fn server(config: ServerConfig) -> (Runtime, Arc<SetRegistry>, LdmsServer) {
    let rt = Runtime::builder().io_threads(2).build().unwrap();
    let reg = SetRegistry::new();
    let srv = LdmsServer::bind(rt.handle(), "127.0.0.1:0".parse().unwrap(), reg.clone(), config).unwrap();
    (rt, reg, srv)
}

/// Polls `f` every 5 ms; fails the test naming `what` after 10 s.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
