//! Fan-out with bounded memory: 100 clients × 100 monitors, one client that stops
//! reading for 10 s; nobody else's updates are delayed, the server does not grow.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use pvloom_ca::proto::command::{Command, Role};
use pvloom_ca::proto::constants::DBE_VALUE;
use pvloom_ca::proto::{Circuit, DbrData, DbrType, Value};
use pvloom_ca::server::{PvSpec, Server, ServerConfig};

const CLIENTS: usize = 100;
const MONITORS: usize = 100;

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Open a circuit, create channels for every PV and subscribe to each.
fn subscribe_all(port: u16, names: &[String]) -> (TcpStream, Circuit) {
    let mut stream = TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut circuit = Circuit::new(Role::Client);
    let mut hello = vec![
        Command::VersionRequest { priority: 0, version: 13 },
        Command::HostNameRequest { name: "fanout".into() },
        Command::ClientNameRequest { name: "test".into() },
    ];
    for (cid, name) in names.iter().enumerate() {
        hello.push(Command::CreateChanRequest { cid: cid as u32, version: 13, name: name.clone() });
    }
    stream.write_all(&circuit.send(&hello).unwrap()).unwrap();
    // Wait for every channel, then subscribe.
    let mut sids = vec![None; names.len()];
    let mut buf = vec![0u8; 65536];
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while sids.iter().any(Option::is_none) {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "server closed");
        circuit.recv(&buf[..n]);
        while let Some(event) = circuit.poll_event().unwrap() {
            if let Command::CreateChanResponse { cid, sid, .. } = event.command {
                sids[cid as usize] = Some(sid);
            }
        }
    }
    let subs: Vec<Command> = sids
        .iter()
        .enumerate()
        .map(|(i, sid)| Command::event_add_request(sid.unwrap(), i as u32, DbrType::Double, 1, DBE_VALUE))
        .collect();
    stream.write_all(&circuit.send(&subs).unwrap()).unwrap();
    (stream, circuit)
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn hundred_clients_and_a_stalled_one() {
    let config = ServerConfig {
        interface: Ipv4Addr::LOCALHOST,
        port: 0,
        beacon_destinations: vec![],
        ..ServerConfig::default()
    };
    let server = Server::builder().config(config).start().unwrap();
    let names: Vec<String> = (0..MONITORS).map(|i| format!("FAN:{i}")).collect();
    let pvs: Vec<_> = names.iter().map(|n| server.add_pv(n, PvSpec::new(Value::Double(vec![0.0])))).collect();

    // The stalled client: subscribes to everything, then never reads again; its
    // kernel buffers fill, its outbox coalesces.
    let (stalled, _stalled_circuit) = subscribe_all(server.port(), &names);

    let stop = Arc::new(AtomicBool::new(false));
    let worst_us = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..CLIENTS {
        let (mut stream, mut circuit) = subscribe_all(server.port(), &names);
        let (stop, worst_us, received) = (stop.clone(), worst_us.clone(), received.clone());
        let mine = Arc::new(AtomicU64::new(0));
        let counted = mine.clone();
        readers.push((
            mine,
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                let mut buf = vec![0u8; 65536];
                let warmup = Instant::now() + Duration::from_secs(1);
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = stream.read(&mut buf) else { continue };
                    if n == 0 {
                        break;
                    }
                    circuit.recv(&buf[..n]);
                    while let Ok(Some(event)) = circuit.poll_event() {
                        if let Command::EventAddResponse { data_type, data_count, data, .. } = event.command {
                            let value = DbrData::decode(data_type, data_count, &data).unwrap().value;
                            let posted = value.to_f64_vec().unwrap()[0];
                            received.fetch_add(1, Ordering::Relaxed);
                            counted.fetch_add(1, Ordering::Relaxed);
                            if posted > 0.0 && Instant::now() > warmup {
                                let delay = ((unix_now() - posted) * 1e6).max(0.0) as u64;
                                worst_us.fetch_max(delay, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }),
        ));
    }
    let rss_before = rss_bytes();
    // 10 s of updates: every PV posted at 10 Hz, the value is the post time.
    let start = Instant::now();
    let mut peak = rss_before;
    while start.elapsed() < Duration::from_secs(10) {
        for pv in &pvs {
            pv.post(Value::Double(vec![unix_now()]));
        }
        peak = peak.max(rss_bytes());
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let mut fewest = u64::MAX;
    for (mine, reader) in readers {
        reader.join().unwrap();
        fewest = fewest.min(mine.load(Ordering::Relaxed));
    }
    drop(stalled);
    let worst = Duration::from_micros(worst_us.load(Ordering::Relaxed));
    let got = received.load(Ordering::Relaxed);
    let fewest = fewest;
    eprintln!(
        "{CLIENTS} clients × {MONITORS} monitors: {got} updates (fewest per client {fewest}), worst delay {worst:?}, RSS growth {} KiB",
        peak.saturating_sub(rss_before) / 1024
    );
    // Posted: 100 PVs × 10 Hz × 10 s = 10 000 per client. A client slower than the
    // posts sees coalesced (newest) values, never a stall.
    assert!(fewest >= 2_000, "every client kept receiving (fewest {fewest} of 10 000)");
    // A stall would hold the others for as long as the stalled client does not read
    // (seconds); 100 reader threads on two busy cores see tens of ms of scheduling alone,
    // so the bound separates the two without timing the machine.
    assert!(worst < Duration::from_secs(1), "a stalled client delayed others by {worst:?}");
    assert!(peak < 100 * 1024 * 1024, "process RSS {peak} (server and 100 clients) stays under 100 MB");
    let _ = BytesMut::new();
}
