//! The set server over real TCP on 127.0.0.1: a hand-built client (a zap `Session` on a
//! blocking socket), bad input, a silent peer. (Connect/close churn is in server_churn.rs.)

mod server_util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pvloom_ldms::request::dir::parse_dir;
use pvloom_ldms::request::{RendezvousBody, RendezvousMsg, ReplyBody};
use pvloom_ldms::server::{ServerConfig, ZAP_ERR_REMOTE_LEN};
use pvloom_ldms::session::{Role, Session, SessionConfig, SessionEvent};
use pvloom_ldms::set::Timestamp;
use pvloom_ldms::zap::{Frame, Msg};
use server_util::*;

struct Peer {
    sock: TcpStream,
    session: Session,
}

impl Peer {
    fn connect(addr: SocketAddr) -> Peer {
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut p = Peer { sock, session: Session::new(Role::Active, SessionConfig::default(), Instant::now()) };
        p.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !p.session.is_open() {
            assert!(Instant::now() < deadline, "handshake");
            p.pull();
            p.flush();
        }
        assert!(matches!(p.session.poll_event(), Some(SessionEvent::Connected { .. })));
        p
    }
    fn flush(&mut self) {
        let mut out = BytesMut::new();
        self.session.poll_transmit(usize::MAX, &mut out);
        self.sock.write_all(&out).unwrap();
    }
    fn pull(&mut self) -> bool {
        let mut buf = [0u8; 65536];
        match self.sock.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.session.handle_input(Instant::now(), &buf[..n]);
                true
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => true,
            Err(_) => false,
        }
    }
    fn send(&mut self, msg: Msg) {
        self.session.send(msg);
        self.flush();
    }
    fn frame(&mut self) -> Frame {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(SessionEvent::Frame(f)) = self.session.poll_event() {
                return f;
            }
            assert!(Instant::now() < deadline, "no frame");
            assert!(self.pull(), "connection closed");
        }
    }
}

/// True once the server closed the socket (EOF or reset) within `within`.
fn closed_within(sock: &mut TcpStream, within: Duration) -> bool {
    sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match sock.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn dir_lookup_read_push_over_tcp() {
    let (_rt, reg, srv) = server(ServerConfig::default());
    let h = reg.publish(small_set("host/s", 0, 0, 0o440)).unwrap();
    h.transaction(Timestamp { sec: 1, usec: 0 }, Timestamp { sec: 1, usec: 5 }, |s| s.set_u64(1, 42).unwrap());
    let mut c = Peer::connect(srv.local_addr());
    wait_for("connection counted", || srv.connections() == 1);
    c.send(dir(1, 0));
    let r = reply_of(&c.frame()).unwrap();
    let ReplyBody::Dir { json, more: 0, .. } = r.body else { panic!("{r:?}") };
    let d = parse_dir(&json).unwrap();
    assert_eq!((d[0].name.as_str(), d[0].data_gn, d[0].flags.as_str()), ("host/s", h.read(|s| s.data_gn()), "CL "));
    c.send(lookup(2, 0, "host/s"));
    let f = c.frame();
    let Msg::Rendezvous(rz) = &f.msg else { panic!("{f:?}") };
    let RendezvousBody::Lookup(l) = RendezvousMsg::decode(&rz.msg).unwrap().body else { panic!() };
    assert_eq!((rz.map_key, rz.addr, l.set_id), (h.map_key(), h.base(), h.set_id()));
    let img = h.read(|s| s.image().to_vec());
    c.send(read_msg(rz.map_key, rz.addr, rz.len));
    let Msg::ReadResp(rr) = c.frame().msg else { panic!() };
    assert_eq!((rr.status, &rr.data[..]), (0, &img[..]));
    c.send(read_msg(rz.map_key, rz.addr + 1, rz.len));
    let Msg::ReadResp(rr) = c.frame().msg else { panic!() };
    assert_eq!((rr.status, rr.data.len()), (ZAP_ERR_REMOTE_LEN, 0));
    c.send(push_msg(h.set_id(), 3));
    std::thread::sleep(Duration::from_millis(50));
    for n in 0..3 {
        h.transaction(Timestamp { sec: 2 + n, usec: 0 }, Timestamp { sec: 2 + n, usec: 1 }, |s| {
            s.set_u64(1, 7).unwrap()
        });
        let p = reply_of(&c.frame()).unwrap();
        let ReplyBody::Push(p) = p.body else { panic!() };
        assert_eq!(p.data_off == 0, n == 0);
    }
    drop(c);
    wait_for("connection gone", || srv.connections() == 0);
    assert_eq!(reg.registrations(), 0);
}

#[test]
fn garbage_and_oversize_frames_are_closed() {
    let (_rt, _reg, srv) = server(ServerConfig::default());
    let mut s = TcpStream::connect(srv.local_addr()).unwrap();
    s.write_all(&[0xee; 64]).unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)), "garbage");
    let mut c = Peer::connect(srv.local_addr());
    let mut hdr = vec![0, 2, 0, 0];
    hdr.extend_from_slice(&((MAX_FRAME + 1) as u32).to_be_bytes());
    hdr.extend_from_slice(&[0; 16]);
    c.sock.write_all(&hdr).unwrap();
    assert!(closed_within(&mut c.sock, Duration::from_secs(5)), "oversize");
    wait_for("no connections", || srv.connections() == 0);
}

#[test]
fn a_silent_peer_is_closed_after_the_handshake_timeout() {
    let mut config = ServerConfig::default();
    config.session.handshake_timeout = Duration::from_millis(300);
    let (_rt, _reg, srv) = server(config);
    let t = Instant::now();
    let mut s = TcpStream::connect(srv.local_addr()).unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    wait_for("no connections", || srv.connections() == 0);
}
