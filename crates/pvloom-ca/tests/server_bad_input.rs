//! Misbehaving clients are disconnected with a logged reason; a well-behaved client on
//! the same server goes on without a stall.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use pvloom_ca::client::{ClientConfig, Context, ReadOptions};
use pvloom_ca::proto::command::{Command, Role};
use pvloom_ca::proto::constants::DBE_VALUE;
use pvloom_ca::proto::{Circuit, DbrType, Value};
use pvloom_ca::server::{PvSpec, Server, ServerConfig};

fn server() -> Server {
    let config = ServerConfig {
        interface: Ipv4Addr::LOCALHOST,
        port: 0,
        beacon_destinations: vec![],
        send_stall_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let server = Server::builder().config(config).start().unwrap();
    server.add_pv("BIG", PvSpec::new(Value::Double(vec![0.5; 200_000])));
    server.add_pv("X", PvSpec::new(Value::Double(vec![1.0])));
    server
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, server.port())).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
}

/// True once the server closed the connection (EOF or reset) within `limit`.
fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

/// A good client keeps getting answers while the bad ones misbehave.
fn good_client_still_served(server: &Server) {
    let ctx = Context::builder()
        .config(ClientConfig {
            addr_list: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, server.port())],
            auto_addr_list: false,
            server_port: server.port(),
            repeater_port: std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port(),
            ..ClientConfig::default()
        })
        .build()
        .unwrap();
    let pv = ctx.get_pv("X");
    let start = Instant::now();
    let reading =
        pv.read_with(ReadOptions { timeout: Some(Duration::from_secs(5)), notify: true, ..Default::default() });
    assert_eq!(reading.unwrap().as_f64s().unwrap(), vec![1.0]);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn garbage_is_disconnected() {
    let server = server();
    let mut bad = connect(&server);
    bad.write_all(&[0xEE; 256]).unwrap();
    assert!(closed_by_server(&mut bad, Duration::from_secs(5)));
    good_client_still_served(&server);
}

#[test]
fn truncated_frame_then_silence_is_harmless_and_eof_closes() {
    let server = server();
    let mut bad = connect(&server);
    let hello = Circuit::new(Role::Client).send(&[Command::VersionRequest { priority: 0, version: 13 }]).unwrap();
    bad.write_all(&hello).unwrap();
    bad.write_all(&[0, 18, 0, 8, 0, 0]).unwrap(); // half a CREATE_CHAN header
    good_client_still_served(&server);
    bad.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_by_server(&mut bad, Duration::from_secs(5)));
}

#[test]
fn huge_counts_and_oversized_payloads() {
    let server = server();
    let mut client = connect(&server);
    let mut circuit = Circuit::new(Role::Client);
    let setup = circuit
        .send(&[
            Command::VersionRequest { priority: 0, version: 13 },
            Command::CreateChanRequest { cid: 1, version: 13, name: "X".into() },
        ])
        .unwrap();
    client.write_all(&setup).unwrap();
    let mut buf = vec![0u8; 65536];
    let sid = loop {
        let n = client.read(&mut buf).unwrap();
        circuit.recv(&buf[..n]);
        if let Some(sid) = std::iter::from_fn(|| circuit.poll_event().unwrap()).find_map(|e| match e.command {
            Command::CreateChanResponse { sid, .. } => Some(sid),
            _ => None,
        }) {
            break sid;
        }
    };
    // A read and a subscription for a billion elements of a 1-element PV: answered with
    // what exists (or refused), never a billion-element allocation.
    let huge = circuit
        .send(&[
            Command::read_notify_request(sid, 7, DbrType::Double, 1_000_000_000),
            Command::event_add_request(sid, 9, DbrType::Double, 1_000_000_000, DBE_VALUE),
        ])
        .unwrap();
    client.write_all(&huge).unwrap();
    let n = client.read(&mut buf).unwrap();
    assert!(n > 0);
    // An extended header announcing a 1 GiB write: refused before buffering it.
    let mut header = vec![0u8, 4, 0xFF, 0xFF, 0, 6, 0, 0];
    header.extend_from_slice(&sid.to_be_bytes());
    header.extend_from_slice(&1u32.to_be_bytes());
    header.extend_from_slice(&(1u32 << 30).to_be_bytes());
    header.extend_from_slice(&(1u32 << 27).to_be_bytes());
    client.write_all(&header).unwrap();
    assert!(closed_by_server(&mut client, Duration::from_secs(5)));
    good_client_still_served(&server);
}

#[test]
fn ten_thousand_creates_for_missing_names_are_cut_off() {
    let server = server();
    let mut bad = connect(&server);
    let mut circuit = Circuit::new(Role::Client);
    let mut commands = vec![Command::VersionRequest { priority: 0, version: 13 }];
    commands.extend((0..10_000).map(|cid| Command::CreateChanRequest {
        cid,
        version: 13,
        name: format!("NOPE:{cid}"),
    }));
    let bytes = circuit.send(&commands).unwrap();
    let _ = bad.write_all(&bytes);
    assert!(closed_by_server(&mut bad, Duration::from_secs(10)));
    good_client_still_served(&server);
}

#[test]
fn a_client_that_stops_reading_is_disconnected_and_delays_nobody() {
    let server = server();
    let mut lazy = connect(&server);
    let mut circuit = Circuit::new(Role::Client);
    let setup = circuit
        .send(&[
            Command::VersionRequest { priority: 0, version: 13 },
            Command::CreateChanRequest { cid: 1, version: 13, name: "BIG".into() },
        ])
        .unwrap();
    lazy.write_all(&setup).unwrap();
    let mut buf = vec![0u8; 65536];
    let sid = loop {
        let n = lazy.read(&mut buf).unwrap();
        circuit.recv(&buf[..n]);
        if let Some(sid) = std::iter::from_fn(|| circuit.poll_event().unwrap()).find_map(|e| match e.command {
            Command::CreateChanResponse { sid, .. } => Some(sid),
            _ => None,
        }) {
            break sid;
        }
    };
    // Ask for 1.6 MB replies over and over, and never read them.
    let reads: Vec<Command> =
        (0..200).map(|ioid| Command::read_notify_request(sid, ioid, DbrType::Double, 0)).collect();
    let bytes = circuit.send(&reads).unwrap();
    let _ = lazy.write_all(&bytes);
    good_client_still_served(&server);
    std::thread::sleep(Duration::from_secs(3));
    assert!(closed_by_server(&mut lazy, Duration::from_secs(10)), "stalled client disconnected");
    good_client_still_served(&server);
}
