//! The daemon end to end on 127.0.0.1: the captures' sampler and aggregator configuration
//! files run unchanged (ports rewritten to free ones), an aggregator pulls, re-serves and
//! stores a sampler daemon's sets, follows the sampler daemon across a restart, and
//! tries a failed lookup again at the next update interval.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use pvloom_ldms::request::{self, Message, Reply, ReplyBody, RequestBody};
use pvloom_ldms::zap::{Frame, FrameDecoder, Msg};

use pvloom_ldms::client::{Xprt, XprtConfig};
use pvloom_ldmsd::config::parse_str;
use pvloom_ldmsd::daemon::{Daemon, DaemonOptions, ProducerState};

fn captures() -> PathBuf {
    let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ldms-captures"));
    assert!(p.is_dir(), "the LDMS captures are missing at {}", p.display());
    p.to_path_buf()
}

fn daemon(root: &Path) -> Daemon {
    Daemon::new(DaemonOptions { proc_root: root.to_path_buf(), io_threads: 1, ..DaemonOptions::default() })
        .expect("daemon")
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn dir_names(addr: SocketAddr) -> Vec<String> {
    let rt = pvloom_core::Runtime::new().unwrap();
    let x = Xprt::connect(&rt.handle(), addr, XprtConfig::default()).expect("connect");
    let mut names: Vec<_> = x.dir().expect("dir").into_iter().map(|e| e.name).collect();
    names.sort();
    x.close();
    names
}

#[test]
fn a_captured_sampler_conf_runs_unchanged_and_serves_its_sets() {
    let conf = captures().join("ls-l-two-samplers/sampler.conf");
    let d = daemon(Path::new("/"));
    d.apply_file(&conf).expect("the capture's sampler.conf");
    let addr = d.listen(local()).unwrap();
    assert_eq!(dir_names(addr), ["localhost1/meminfo", "localhost1/vmstat"]);
    let start = d.samples();
    wait_until("two samples", Duration::from_secs(5), || d.samples() >= start + 2);
    let rt = pvloom_core::Runtime::new().unwrap();
    let x = Xprt::connect(&rt.handle(), addr, XprtConfig::default()).unwrap();
    let set = x.lookup("localhost1/meminfo", 0).unwrap().remove(0);
    let snap = set.update().unwrap();
    assert!(snap.is_consistent());
    assert!(snap.value_by_name("MemTotal").is_some());
}

#[test]
fn an_unsupported_line_names_its_file_and_line() {
    let d = daemon(Path::new("/"));
    let cmds = parse_str("load name=meminfo\nconfig name=nosuch producer=p instance=p/x\n", "bad.conf").unwrap();
    let err = d.apply_all(&cmds).unwrap_err().to_string();
    assert!(err.starts_with("bad.conf:2:"), "{err}");
    let cmds = parse_str("load name=no_such_plugin\n", "bad.conf").unwrap();
    let err = d.apply_all(&cmds).unwrap_err().to_string();
    assert!(err.contains("bad.conf:1") && err.contains("no_such_plugin"), "{err}");
}

/// The capture's aggregator.conf with its producer port pointed at `port`, plus store_csv.
fn aggregator_conf(port: u16, csv: &Path) -> String {
    let text = std::fs::read_to_string(captures().join("aggregator/aggregator.conf")).unwrap();
    let text = text.replace("port=10441", &format!("port={port}"));
    format!(
        "{text}load name=store_csv\nconfig name=store_csv path={} buffer=0\n\
         strgp_add name=s1 plugin=store_csv container=csv schema=meminfo\nstrgp_prdcr_add name=s1 regex=.*\n\
         strgp_start name=s1\n",
        csv.display()
    )
}

#[test]
fn an_aggregator_pulls_serves_stores_and_follows_a_restart() {
    let conf = captures().join("ls-l-two-samplers/sampler.conf");
    let sampler = daemon(Path::new("/"));
    sampler.apply_file(&conf).unwrap();
    let sampler_addr = sampler.listen(local()).unwrap();

    let csv = std::env::temp_dir().join(format!("pvloom-agg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&csv);
    std::fs::create_dir_all(&csv).unwrap();
    let agg = daemon(Path::new("/"));
    agg.apply_all(&parse_str(&aggregator_conf(sampler_addr.port(), &csv), "aggregator.conf").unwrap()).unwrap();
    let agg_addr = agg.listen(local()).unwrap();
    wait_until("the aggregator to serve both sets", Duration::from_secs(10), || agg.registry().len() == 2);
    assert_eq!(dir_names(agg_addr), ["localhost1/meminfo", "localhost1/vmstat"]);

    let rows = || std::fs::read_to_string(csv.join("csv/meminfo")).map(|t| t.lines().count()).unwrap_or(0);
    wait_until("stored rows", Duration::from_secs(10), || rows() >= 3);
    let text = std::fs::read_to_string(csv.join("csv/meminfo")).unwrap();
    assert!(text.starts_with("#Time,Time_usec,ProducerName,component_id,job_id,app_id,MemTotal,"), "{text}");
    assert!(text.lines().nth(1).unwrap().contains(",localhost1,1,0,0,"), "{text}");

    // The producer goes away: its sets are withdrawn; it comes back on the same port.
    drop(sampler);
    // SET_DELETE may empty the registry before the disconnect arrives: wait for both.
    wait_until("the sets to be withdrawn and the producer to be retried", Duration::from_secs(10), || {
        agg.registry().is_empty() && agg.producers()[0].state == ProducerState::Connecting
    });
    let sampler = daemon(Path::new("/"));
    sampler.apply_file(&conf).unwrap();
    sampler.listen(sampler_addr).expect("the same port again");
    wait_until("the sets to come back", Duration::from_secs(10), || agg.registry().len() == 2);
    assert!(agg.producers()[0].connects >= 2);
    drop(agg);
    let _ = std::fs::remove_dir_all(&csv);
}

#[test]
fn every_captured_conf_runs_unchanged() {
    let root = captures();
    let mut ran = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let conf = dir.join("sampler.conf");
        if !conf.is_file() {
            continue;
        }
        let d = daemon(Path::new("/"));
        d.apply_file(&conf).unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
        assert!(!d.registry().is_empty(), "{} made no set", conf.display());
        if dir.ends_with("aggregator") {
            // The run-time additions the capture made through ldmsd_controller, in order.
            let n = d.registry().len();
            d.apply_file(&dir.join("ctl-add-vmstat.conf")).unwrap();
            assert_eq!(d.registry().len(), n + 1);
            d.apply_file(&dir.join("ctl-del-vmstat.conf")).unwrap();
            assert_eq!(d.registry().len(), n);
            // The aggregator's own file: its producer is not there, so it keeps retrying.
            let agg = daemon(Path::new("/"));
            agg.apply_file(&dir.join("aggregator.conf")).unwrap();
            assert_eq!(agg.producers().len(), 1);
        }
        ran += 1;
    }
    assert!(ran >= 8, "only {ran} sampler.conf files found");
}

/// Each frame of `from` in turn, as its raw bytes and decoded, until the stream ends or
/// does not decode.
fn for_each_frame(mut from: TcpStream, mut each: impl FnMut(&[u8], &Frame) -> bool) {
    let mut dec = FrameDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        if dec.push(&buf[..n]).is_err() {
            return;
        }
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => {
                    let raw: Vec<u8> = pending.drain(..f.encoded_len()).collect();
                    if !each(&raw, &f) {
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// A proxy in front of `upstream` that answers the first LOOKUP it sees itself, with
/// EBUSY, and forwards everything else frame by frame. Returns its address and the
/// number of lookups it refused.
fn proxy_refusing_the_first_lookup(upstream: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let counter = refused.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(upstream) else { return };
            let to_client = Arc::new(Mutex::new(client.try_clone().unwrap()));
            let (down_in, down_out) = (server.try_clone().unwrap(), to_client.clone());
            std::thread::spawn(move || {
                for_each_frame(down_in, |raw, _| down_out.lock().write_all(raw).is_ok());
            });
            let counter = counter.clone();
            let mut to_server = server;
            std::thread::spawn(move || {
                for_each_frame(client, |raw, f| {
                    if let Msg::SendRecv(data) = &f.msg
                        && let Ok(Message::Request(r)) = request::decode(data)
                        && matches!(r.body, RequestBody::Lookup { .. })
                        && counter.fetch_add(1, Ordering::SeqCst) == 0
                    {
                        let reply = Message::Reply(Reply { xid: r.xid, rc: 16, body: ReplyBody::Lookup });
                        let mut body = BytesMut::new();
                        request::encode(&reply, &mut body);
                        let frame =
                            Frame { reserved: 0, xid: 0x7fff_0000, ctxt: 0, msg: Msg::SendRecv(Bytes::from(body)) };
                        let mut out = BytesMut::new();
                        frame.encode(&mut out);
                        return to_client.lock().write_all(&out).is_ok();
                    }
                    to_server.write_all(raw).is_ok()
                });
                let _ = to_server.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (addr, refused)
}

#[test]
fn a_lookup_that_failed_is_tried_again_at_the_next_interval() {
    let sampler = daemon(Path::new("/"));
    sampler.apply_file(&captures().join("ls-l-two-samplers/sampler.conf")).unwrap();
    let sampler_addr = sampler.listen(local()).unwrap();
    let (proxy, refused) = proxy_refusing_the_first_lookup(sampler_addr);

    let conf = std::fs::read_to_string(captures().join("aggregator/aggregator.conf")).unwrap();
    let conf = conf.replace("port=10441", &format!("port={}", proxy.port()));
    let agg = daemon(Path::new("/"));
    agg.apply_all(&parse_str(&conf, "aggregator.conf").unwrap()).unwrap();
    // One of the two lookups is refused; the updater asks again within its 1 s interval.
    wait_until("both sets, the refused one looked up again", Duration::from_secs(10), || agg.registry().len() == 2);
    assert_eq!(refused.load(Ordering::SeqCst), 3, "two lookups and the one retry went through the proxy");
    assert_eq!(agg.producers()[0].connects, 1, "no reconnect was needed");
    drop(agg);
}
