//! A scripted server that misbehaves: every kind of bad input closes the circuit with
//! a logged error, the PV goes disconnected, then reconnects (the next connection is
//! served well), and nothing panics.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use pvloom_ca::client::{ClientConfig, ConnectionState, Context, ReadOptions};
use pvloom_ca::proto::command::{AccessRights, Command, Role};
use pvloom_ca::proto::{DbrData, DbrType, FrameDecoder, Value, decode_datagram};

/// What the server does on its first connection, after the channel is created.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    Garbage,
    TruncatedThenClose,
    UnknownCommand,
    HugePayload,
    ReplyForUnknownIoid,
    ReplyForUnknownChannel,
    WrongVersion,
}

fn header(command: u16, payload: u32, data_type: u16, count: u32, p1: u32, p2: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(16);
    h.extend_from_slice(&command.to_be_bytes());
    h.extend_from_slice(&(payload as u16).to_be_bytes());
    h.extend_from_slice(&data_type.to_be_bytes());
    h.extend_from_slice(&(count as u16).to_be_bytes());
    h.extend_from_slice(&p1.to_be_bytes());
    h.extend_from_slice(&p2.to_be_bytes());
    h
}

fn bad_bytes(kind: Misbehaviour) -> Vec<u8> {
    match kind {
        Misbehaviour::Garbage => vec![0xAB; 64],
        Misbehaviour::TruncatedThenClose => header(15, 64, 6, 1, 1, 1)[..10].to_vec(),
        Misbehaviour::UnknownCommand => header(0x0777, 0, 0, 0, 0, 0),
        // An extended header announcing 1 GiB of payload: refused before buffering.
        Misbehaviour::HugePayload => {
            let mut h = header(15, 0xFFFF, 6, 0, 1, 1);
            h.extend_from_slice(&(1u32 << 30).to_be_bytes());
            h.extend_from_slice(&1u32.to_be_bytes());
            h
        }
        Misbehaviour::ReplyForUnknownIoid => {
            let data = DbrData::plain(Value::Double(vec![1.0])).encode(DbrType::Double).unwrap();
            let reply = Command::ReadNotifyResponse {
                data_type: DbrType::Double,
                data_count: 1,
                status: 1,
                ioid: 999_999,
                data,
            };
            reply.to_bytes().unwrap().to_vec()
        }
        Misbehaviour::WrongVersion => Command::VersionResponse { version: 2 }.to_bytes().unwrap().to_vec(),
        Misbehaviour::ReplyForUnknownChannel => {
            Command::AccessRightsResponse { cid: 424_242, access_rights: AccessRights(3) }.to_bytes().unwrap().to_vec()
        }
    }
}

/// Serves one PV named "BAD:PV" (a double, value 7.0). Misbehaves on the first
/// connection only.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(kind: Misbehaviour) -> Server {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let connections = Arc::new(AtomicUsize::new(0));
    let (s1, s2, c) = (stop.clone(), stop.clone(), connections.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !s1.load(Ordering::SeqCst) {
            let Ok((n, from)) = udp.recv_from(&mut buf) else { continue };
            let Ok(commands) = decode_datagram(Bytes::copy_from_slice(&buf[..n]), Role::Server) else { continue };
            for command in commands {
                if let Command::SearchRequest { name, search_id, .. } = command
                    && name == "BAD:PV"
                {
                    let mut reply = BytesMut::new();
                    Command::DatagramVersion { version: 13, sequence: None }.encode(&mut reply).unwrap();
                    Command::SearchResponse { port, server_address: None, search_id, version: Some(13) }
                        .encode(&mut reply)
                        .unwrap();
                    let _ = udp.send_to(&reply, from);
                }
            }
        }
    });
    std::thread::spawn(move || {
        while !s2.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let first = c.fetch_add(1, Ordering::SeqCst) == 0;
                    let stop = s2.clone();
                    std::thread::spawn(move || handle(stream, first.then_some(kind), stop));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Server { port, stop, connections }
}

fn handle(mut stream: TcpStream, misbehave: Option<Misbehaviour>, stop: Arc<AtomicBool>) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut decoder = FrameDecoder::new(Default::default());
    let mut buf = [0u8; 4096];
    let _ = stream.write_all(&Command::VersionResponse { version: 13 }.to_bytes().unwrap());
    while !stop.load(Ordering::SeqCst) {
        let n = match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(_) => continue,
        };
        decoder.push(&buf[..n]);
        while let Ok(Some(command)) = decoder.next_command(Role::Server) {
            let mut out = BytesMut::new();
            match command {
                Command::CreateChanRequest { cid, .. } => {
                    Command::AccessRightsResponse { cid, access_rights: AccessRights(3) }.encode(&mut out).unwrap();
                    Command::CreateChanResponse { data_type: DbrType::Double, data_count: 1, cid, sid: 77 }
                        .encode(&mut out)
                        .unwrap();
                    if let Some(kind) = misbehave {
                        out.extend_from_slice(&bad_bytes(kind));
                        let _ = stream.write_all(&out);
                        if matches!(kind, Misbehaviour::TruncatedThenClose) {
                            return;
                        }
                        continue;
                    }
                }
                Command::ReadNotifyRequest { ioid, .. } => {
                    let data = DbrData::plain(Value::Double(vec![7.0])).encode(DbrType::Double).unwrap();
                    Command::ReadNotifyResponse { data_type: DbrType::Double, data_count: 1, status: 1, ioid, data }
                        .encode(&mut out)
                        .unwrap();
                }
                Command::EchoRequest => Command::EchoResponse.encode(&mut out).unwrap(),
                _ => {}
            }
            if !out.is_empty() {
                let _ = stream.write_all(&out);
            }
        }
    }
}

fn check(kind: Misbehaviour) {
    let server = serve(kind);
    let config = ClientConfig {
        addr_list: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, server.port)],
        auto_addr_list: false,
        server_port: server.port,
        repeater_port: UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port(),
        timeout: Duration::from_secs(5),
        max_array_bytes: 1 << 20,
        ..ClientConfig::default()
    };
    let ctx = Context::builder().config(config).build().unwrap();
    let pv = ctx.get_pv("BAD:PV");
    let states = Arc::new(Mutex::new(Vec::new()));
    let s = states.clone();
    pv.add_connection_callback(move |_, state| s.lock().push(state));
    // The bad first connection is dropped; the PV searches again and the second
    // connection is served well.
    let deadline = Instant::now() + Duration::from_secs(20);
    let reading = loop {
        match pv.read_with(ReadOptions { timeout: Some(Duration::from_secs(2)), notify: true, ..Default::default() }) {
            Ok(reading) => break reading,
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => panic!("{kind:?}: never recovered: {err}"),
        }
    };
    assert_eq!(reading.as_f64s().unwrap(), vec![7.0], "{kind:?}");
    assert!(server.connections.load(Ordering::SeqCst) >= 2, "{kind:?}: the bad circuit was closed and reopened");
    // Connection callbacks run on the callback worker: give the last one a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while states.lock().last() != Some(&ConnectionState::Connected) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let states = states.lock().clone();
    assert!(states.contains(&ConnectionState::Disconnected), "{kind:?}: {states:?}");
    assert_eq!(states.last(), Some(&ConnectionState::Connected), "{kind:?}: {states:?}");
}

#[test]
fn garbage_closes_the_circuit_and_the_pv_reconnects() {
    check(Misbehaviour::Garbage);
}

#[test]
fn truncated_frame_then_close() {
    check(Misbehaviour::TruncatedThenClose);
}

#[test]
fn unknown_command() {
    check(Misbehaviour::UnknownCommand);
}

#[test]
fn payload_over_max_array_bytes() {
    check(Misbehaviour::HugePayload);
}

#[test]
fn reply_for_an_ioid_never_issued() {
    check(Misbehaviour::ReplyForUnknownIoid);
}

#[test]
fn reply_for_a_channel_never_created() {
    check(Misbehaviour::ReplyForUnknownChannel);
}

#[test]
fn unsupported_protocol_version() {
    check(Misbehaviour::WrongVersion);
}
