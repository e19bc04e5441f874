//! The message half of `bench/ldms` across processes, as deployed: publishers (threads
//! of this process) → a `pvloom ldmsd` with `msg_enable` → M subscriber processes, each
//! an `Xprt` that `msg_subscribe`s and a `MsgClient` counting what arrives.
//!
//! `ldms_msg_daemon_bench --pvloom PATH [--seconds S] [--publishers N] [--subscribers M]
//! [--sizes 64,1024]`
//!
//! Per size one line of `key=value`: messages published per second, deliveries per
//! second (every subscriber's, from the first publish to the last arrival), lost
//! deliveries, and CPU per published message of the daemon, of the publishers' process
//! and of the subscribers together (from /proc). Children are killed by PID at the end.
//!
//! `--role sub --port P` is a subscriber process: it prints `ready`, then answers each
//! line on stdin with `COUNT CPU_SECONDS`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pvloom_ldms::bus::{BusConfig, MsgBus, MsgClient};
use pvloom_ldms::client::{Xprt, XprtConfig};
use pvloom_ldms::msg::MsgType;

/// The allocator the `pvloom` binary ships with, so the numbers are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Error = Box<dyn std::error::Error>;

/// CPU seconds (user + system) of a process, from /proc/PID/stat.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(p) = stat.rfind(')') else { return 0.0 };
    let f: Vec<&str> = stat[p + 2..].split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn connect(rt: &pvloom_core::Runtime, addr: SocketAddr) -> Result<(Xprt, Arc<MsgBus>), Error> {
    let bus = MsgBus::new(BusConfig::default());
    let mut xc = XprtConfig::default();
    xc.conn.bus = Some(bus.clone());
    Ok((Xprt::connect(&rt.handle(), addr, xc)?, bus))
}

fn role_sub(port: u16) -> Result<(), Error> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let rt = pvloom_core::Runtime::builder().io_threads(1).build()?;
    let (x, bus) = connect(&rt, addr)?;
    let got = Arc::new(AtomicU64::new(0));
    let g = got.clone();
    let _client = MsgClient::new(&bus, &rt.handle(), "bench", false, move |_| {
        g.fetch_add(1, Ordering::Relaxed);
    })?;
    x.msg_subscribe("bench", false, -1)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        line?;
        writeln!(out, "{} {}", got.load(Ordering::Relaxed), cpu_seconds("self"))?;
        out.flush()?;
    }
    Ok(())
}

/// A child killed and reaped, by its PID, when dropped.
struct Proc {
    child: Child,
    lines: Option<BufReader<ChildStdout>>,
    stdin: Option<ChildStdin>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn ask(&mut self) -> Result<(u64, f64), Error> {
        let (Some(i), Some(o)) = (self.stdin.as_mut(), self.lines.as_mut()) else { return Err("no pipes".into()) };
        writeln!(i)?;
        i.flush()?;
        let mut s = String::new();
        o.read_line(&mut s)?;
        let mut it = s.split_whitespace();
        let n = it.next().ok_or("no count")?.parse()?;
        let cpu = it.next().ok_or("no cpu")?.parse()?;
        Ok((n, cpu))
    }
}

fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    if opt("--role").as_deref() == Some("sub") {
        return role_sub(opt("--port").ok_or("--port")?.parse()?);
    }
    let pvloom = opt("--pvloom").ok_or("--pvloom PATH (the pvloom binary) is required")?;
    let seconds: f64 = opt("--seconds").map_or(Ok(3.0), |s| s.parse())?;
    let n_pub: usize = opt("--publishers").map_or(Ok(1), |s| s.parse())?;
    let n_sub: usize = opt("--subscribers").map_or(Ok(1), |s| s.parse())?;
    let sizes: Vec<usize> =
        opt("--sizes").unwrap_or_else(|| "64,1024".into()).split(',').map(str::parse).collect::<Result<_, _>>()?;

    let port = free_port()?;
    let conf = std::env::temp_dir().join(format!("pvloom-msg-bench-{}.conf", std::process::id()));
    std::fs::write(&conf, "msg_enable\n")?;
    let listen = format!("sock:{port}:127.0.0.1");
    let daemon = Proc {
        child: Command::new(&pvloom)
            .args(["ldmsd", "-F", "-x", &listen, "-c"])
            .arg(&conf)
            .args(["-v", "ERROR"])
            .spawn()?,
        lines: None,
        stdin: None,
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let up = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > up {
            return Err("pvloom ldmsd did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let me = std::env::current_exe()?;
    let mut subs = Vec::new();
    for _ in 0..n_sub {
        let mut child = Command::new(&me)
            .args(["--role", "sub", "--port", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("stdout")?);
        let mut ready = String::new();
        lines.read_line(&mut ready)?;
        if ready.trim() != "ready" {
            return Err(format!("subscriber said {ready:?}").into());
        }
        let stdin = child.stdin.take();
        subs.push(Proc { child, lines: Some(lines), stdin });
    }
    let rt = pvloom_core::Runtime::builder().io_threads(1).build()?;
    let pubs: Vec<Xprt> = (0..n_pub).map(|_| connect(&rt, addr).map(|(x, _)| x)).collect::<Result<_, _>>()?;

    let mut expected = 0u64;
    for size in sizes {
        let data = Bytes::from(vec![b'm'; size]);
        let published = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let before: Vec<(u64, f64)> = subs.iter_mut().map(Proc::ask).collect::<Result<_, _>>()?;
        let (daemon_cpu0, pub_cpu0) = (cpu_seconds(&daemon.pid()), cpu_seconds("self"));
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
        let pub_cpu = cpu_seconds("self") - pub_cpu0;
        let published = published.load(Ordering::Relaxed);
        expected += published;
        let limit = Instant::now() + Duration::from_secs(30);
        let mut now: Vec<(u64, f64)>;
        loop {
            now = subs.iter_mut().map(Proc::ask).collect::<Result<_, _>>()?;
            if now.iter().all(|&(n, _)| n >= expected) || Instant::now() > limit {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let all_s = t0.elapsed().as_secs_f64();
        let got: u64 = now.iter().zip(&before).map(|(a, b)| a.0 - b.0).sum();
        let sub_cpu: f64 = now.iter().zip(&before).map(|(a, b)| a.1 - b.1).sum();
        let daemon_cpu = cpu_seconds(&daemon.pid()) - daemon_cpu0;
        let per = |cpu: f64| cpu * 1e6 / published.max(1) as f64;
        println!(
            "path=ldmsd size={size} publishers={n_pub} subscribers={n_sub} published={published} pub_rate={:.0} \
             deliveries={got} delivery_rate={:.0} lost={} daemon_cpu_us_per_msg={:.3} pub_cpu_us_per_msg={:.3} \
             sub_cpu_us_per_msg={:.3}",
            published as f64 / pub_s,
            got as f64 / all_s,
            (published * n_sub as u64).saturating_sub(got),
            per(daemon_cpu),
            per(pub_cpu),
            per(sub_cpu),
        );
    }
    for x in &pubs {
        x.close();
    }
    drop(subs);
    drop(daemon);
    let _ = std::fs::remove_file(conf);
    Ok(())
}
