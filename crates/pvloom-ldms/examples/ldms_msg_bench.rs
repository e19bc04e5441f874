//! The message half of `bench/ldms`: `ldms_msg_bench [--seconds S] [--publishers N]
//! [--subscribers M] [--sizes 64,1024] [--io-threads T]`.
//!
//! Starts an in-process pvloom LDMS server with a message bus (what `msg_enable` turns
//! on), M subscriber connections (each MSG_SUB "bench" and a local client on its own bus
//! counting what arrives) and N publisher connections, each publishing from its own thread
//! as fast as the back-pressure lets it for S seconds; then waits for the deliveries to
//! drain. For each size prints one line of `key=value` pairs: messages published and
//! received per second, CPU per published message of the whole process (publishers,
//! daemon and subscribers together, from /proc/self/stat), and the RSS.
//!
//! First, as a baseline for where the time goes, one line per size of `path=bus`: the
//! daemon's bus alone, `MsgBus::publish` to a local client in the same process (no
//! encoding, no TCP).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pvloom_ldms::bus::{BusConfig, MsgBus, MsgClient};
use pvloom_ldms::client::{Xprt, XprtConfig};
use pvloom_ldms::msg::MsgType;
use pvloom_ldms::server::{LdmsServer, ServerConfig, SetRegistry};

/// The allocator the `pvloom` binary ships with, so the numbers are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU seconds (user + system) of this process, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some(p) = stat.rfind(')') else { return 0.0 };
    let f: Vec<&str> = stat[p + 2..].split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

/// Resident set size in MiB, from /proc/self/status.
fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let seconds: f64 = opt("--seconds").map_or(Ok(3.0), |s| s.parse())?;
    let n_pub: usize = opt("--publishers").map_or(Ok(2), |s| s.parse())?;
    let n_sub: usize = opt("--subscribers").map_or(Ok(2), |s| s.parse())?;
    let sizes: Vec<usize> =
        opt("--sizes").unwrap_or_else(|| "64,1024".into()).split(',').map(str::parse).collect::<Result<_, _>>()?;

    let io_threads: usize = opt("--io-threads").map_or(Ok(2), |s| s.parse())?;
    let rt = pvloom_core::Runtime::builder().io_threads(io_threads).build()?;
    for &size in &sizes {
        let bus = MsgBus::new(BusConfig::default());
        let got = Arc::new(AtomicU64::new(0));
        let g = got.clone();
        let _c = MsgClient::new(&bus, &rt.handle(), "bench", false, move |_| {
            g.fetch_add(1, Ordering::Relaxed);
        })?;
        let data = Bytes::from(vec![b'm'; size]);
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        let mut n = 0u64;
        while t0.elapsed().as_secs_f64() < seconds.min(2.0) {
            for _ in 0..256 {
                bus.publish("bench", MsgType::String, data.clone(), (0, 0, 0o444))?;
            }
            n += 256;
            // Let the deliveries keep up (the callback queue is not bounded here).
            while n - got.load(Ordering::Relaxed) > 65536 {
                std::thread::yield_now();
            }
        }
        while got.load(Ordering::Relaxed) < n {
            std::thread::yield_now();
        }
        let dt = t0.elapsed().as_secs_f64();
        println!(
            "path=bus size={size} published={n} rate={:.0} cpu_us_per_msg={:.3} rss_mib={:.1}",
            n as f64 / dt,
            (cpu_seconds() - cpu0) * 1e6 / n as f64,
            rss_mib()
        );
    }
    let daemon_bus = MsgBus::new(BusConfig::default());
    let config = ServerConfig { bus: Some(daemon_bus.clone()), ..ServerConfig::default() };
    let server = LdmsServer::bind(rt.handle(), "127.0.0.1:0".parse()?, SetRegistry::new(), config)?;
    let addr = server.local_addr();

    let received = Arc::new(AtomicU64::new(0));
    let mut subs = Vec::new();
    for _ in 0..n_sub {
        let bus = MsgBus::new(BusConfig::default());
        let r = received.clone();
        let c = MsgClient::new(&bus, &rt.handle(), "bench", false, move |_| {
            r.fetch_add(1, Ordering::Relaxed);
        })?;
        let mut xc = XprtConfig::default();
        xc.conn.bus = Some(bus);
        let x = Xprt::connect(&rt.handle(), addr, xc)?;
        x.msg_subscribe("bench", false, -1)?;
        subs.push((x, c));
    }
    let pubs: Vec<Xprt> = (0..n_pub)
        .map(|_| {
            let mut xc = XprtConfig::default();
            xc.conn.bus = Some(MsgBus::new(BusConfig::default()));
            Xprt::connect(&rt.handle(), addr, xc)
        })
        .collect::<Result<_, _>>()?;

    for size in sizes {
        let data = Bytes::from(vec![b'm'; size]);
        let published = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let r0 = received.load(Ordering::Relaxed);
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for x in &pubs {
                let (data, published, stop) = (data.clone(), published.clone(), stop.clone());
                s.spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..64 {
                            if x.msg_publish("bench", MsgType::String, data.clone()).is_err() {
                                break;
                            }
                            n += 1;
                        }
                    }
                    published.fetch_add(n, Ordering::Relaxed);
                });
            }
            std::thread::sleep(Duration::from_secs_f64(seconds));
            stop.store(true, Ordering::Relaxed);
        });
        let pub_s = t0.elapsed().as_secs_f64();
        let published = published.load(Ordering::Relaxed);
        let want = published * n_sub as u64;
        let limit = Instant::now() + Duration::from_secs(30);
        while received.load(Ordering::Relaxed) - r0 < want && Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(1));
        }
        let all_s = t0.elapsed().as_secs_f64();
        let got = received.load(Ordering::Relaxed) - r0;
        let cpu = cpu_seconds() - cpu0;
        println!(
            "path=tcp size={size} publishers={n_pub} subscribers={n_sub} published={published} pub_rate={:.0} \
             received={got} recv_rate={:.0} lost={} cpu_us_per_msg={:.3} cpu_us_per_delivery={:.3} rss_mib={:.1}",
            published as f64 / pub_s,
            got as f64 / all_s,
            want.saturating_sub(got),
            cpu * 1e6 / published.max(1) as f64,
            cpu * 1e6 / got.max(1) as f64,
            rss_mib(),
        );
    }
    for x in &pubs {
        x.close();
    }
    for (x, _) in &subs {
        x.close();
    }
    Ok(())
}
