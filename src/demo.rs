//! `pvloom demo`: an embedded soft IOC (random walk, ramp, waveform, a setpoint) served
//! over Channel Access on loopback, watched live through pvloom's own CA client; and an
//! embedded LDMS daemon (meminfo and loadavg samplers, plus a set the CA monitors feed)
//! read live through pvloom's LDMS client; and a chirp echo node, sent a few requests
//! whose round trips are printed. Needs nothing but cargo: servers, clients and
//! repeater all run in this process.

use std::io::{IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use parking_lot::Mutex;
use pvloom_ca::client::{ClientConfig, Context, DbrClass, ReadOptions, Response, SubscribeOptions};
use pvloom_ca::proto::Value;
use pvloom_ca::server::{PvHandle, PvSpec, Server, ServerConfig};

use crate::demo_chirp::ChirpDemo;
use crate::demo_ldms::{LdmsDemo, MIRROR, mirror_value};

/// Options of `pvloom demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Update rate of the IOC's PVs, in Hz.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// PV name prefix.
    #[arg(long, default_value = "DEMO:")]
    prefix: String,
    /// The NeXus file the demo records its CA PVs and LDMS set into (replaced each run;
    /// default: pvloom-demo.h5 in the temporary directory).
    #[arg(long)]
    nexus_out: Option<std::path::PathBuf>,
}

const WAVEFORM_POINTS: usize = 64;

struct Ioc {
    walk: PvHandle,
    ramp: PvHandle,
    wave: PvHandle,
    setpoint: PvHandle,
}

fn start_ioc(prefix: &str, repeater_port: u16) -> anyhow::Result<(Server, Ioc)> {
    let config = ServerConfig {
        interface: Ipv4Addr::LOCALHOST,
        port: 0,
        beacon_destinations: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, repeater_port)],
        ..ServerConfig::default()
    };
    let server = Server::builder().config(config).start().context("starting the embedded IOC")?;
    let mut walk = PvSpec::new(Value::Double(vec![0.0]));
    walk.units = "mm".into();
    walk.precision = 3;
    walk.display_limits = (-10.0, 10.0);
    walk.alarm_limits = Some((-8.0, -5.0, 5.0, 8.0));
    let mut ramp = PvSpec::new(Value::Long(vec![0]));
    ramp.display_limits = (0.0, 99.0);
    ramp.read_only = true;
    let mut wave = PvSpec::new(Value::Double(vec![0.0; WAVEFORM_POINTS]));
    wave.units = "V".into();
    let mut setpoint = PvSpec::new(Value::Double(vec![0.0]));
    setpoint.units = "mm".into();
    setpoint.control_limits = (-10.0, 10.0);
    let ioc = Ioc {
        walk: server.add_pv(&format!("{prefix}RANDOM_WALK"), walk),
        ramp: server.add_pv(&format!("{prefix}RAMP"), ramp),
        wave: server.add_pv(&format!("{prefix}WAVEFORM"), wave),
        setpoint: server.add_pv(&format!("{prefix}SETPOINT"), setpoint),
    };
    Ok((server, ioc))
}

/// The IOC's scan thread: the walk drifts toward the setpoint, the ramp counts, the
/// waveform is a travelling sine.
fn run_ioc(ioc: Ioc, rate: f64, stop: Arc<AtomicBool>) {
    let period = Duration::try_from_secs_f64(1.0 / rate.clamp(1.0, 10_000.0)).unwrap_or(Duration::from_millis(20));
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let (mut x, mut n) = (0.0f64, 0i32);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let target = ioc.setpoint.value().to_f64_vec().and_then(|v| v.first().copied()).unwrap_or(0.0);
        x += (seed as f64 / u64::MAX as f64 - 0.5) * 0.5 + (target - x) * 0.05;
        n = (n + 1) % 100;
        ioc.walk.post(Value::Double(vec![x]));
        ioc.ramp.post(Value::Long(vec![n]));
        let phase = f64::from(n) / 100.0 * std::f64::consts::TAU;
        let wave =
            (0..WAVEFORM_POINTS).map(|i| (phase + i as f64 / WAVEFORM_POINTS as f64 * std::f64::consts::TAU).sin());
        ioc.wave.post(Value::Double(wave.collect()));
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

#[derive(Default)]
struct Seen {
    latest: Mutex<Option<Arc<Response>>>,
    updates: AtomicU64,
}

fn describe(response: &Response) -> String {
    let values = response.as_f64s().unwrap_or_default();
    let alarm = response.alarm().filter(|a| a.severity != 0).map_or(String::new(), |a| {
        format!("  [{}]", ["", "MINOR", "MAJOR", "INVALID"].get(usize::from(a.severity)).unwrap_or(&"?"))
    });
    match values.len() {
        0 => format!("{:?}", response.value()),
        1 => format!("{:>10.3}{alarm}", values[0]),
        len => {
            // A one-line sparkline of the waveform.
            let bars = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
            let line: String = values
                .iter()
                .step_by(2)
                .map(|v| bars[(((v + 1.0) / 2.0 * 7.0).round().clamp(0.0, 7.0)) as usize])
                .collect();
            format!("[{len}] {line}")
        }
    }
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let repeater_port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
    let (server, ioc) = start_ioc(&args.prefix, repeater_port)?;
    let stop = Arc::new(AtomicBool::new(false));
    let scan = {
        let (stop, rate) = (stop.clone(), args.rate);
        std::thread::Builder::new().name("demo-ioc-scan".into()).spawn(move || run_ioc(ioc, rate, stop))?
    };

    let config = ClientConfig {
        addr_list: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, server.port())],
        auto_addr_list: false,
        server_port: server.port(),
        repeater_port,
        ..ClientConfig::default()
    };
    let ctx = Context::builder().config(config.clone()).build().context("starting the CA client")?;
    let ldms = LdmsDemo::start().context("starting the embedded LDMS daemon")?;
    let chirp = ChirpDemo::start()?;
    let names: Vec<String> =
        ["RANDOM_WALK", "RAMP", "WAVEFORM", "SETPOINT"].iter().map(|n| format!("{}{n}", args.prefix)).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let pvs = ctx.get_pvs(&refs);
    let mut handles = Vec::new();
    let seen: Vec<Arc<Seen>> = pvs.iter().map(|_| Arc::new(Seen::default())).collect();
    for (i, (pv, seen)) in pvs.iter().zip(&seen).enumerate() {
        pv.wait_for_connection(Some(Duration::from_secs(5))).with_context(|| format!("connecting {}", pv.name()))?;
        let sub = pv.subscribe(SubscribeOptions { class: DbrClass::Time, ..Default::default() });
        let seen = seen.clone();
        let mirror = ldms.mirror_handle();
        handles.push(sub.add_callback(move |update| {
            seen.updates.fetch_add(1, Ordering::Relaxed);
            // CA monitors of the walk and the ramp feed the LDMS mirror set.
            let v = update.as_f64s().and_then(|v| v.first().copied());
            match i {
                0 => mirror_value(&mirror, v, None),
                1 => mirror_value(&mirror, None, v.map(|r| r as i32)),
                _ => {}
            }
            *seen.latest.lock() = Some(update);
        }));
    }
    let units = pvs[0].read_with(ReadOptions::class(DbrClass::Control))?;
    let nexus_out = args.nexus_out.clone().unwrap_or_else(|| std::env::temp_dir().join("pvloom-demo.h5"));
    let recording = crate::demo_nexus::start(&ctx, &config, &names[..2], ldms.addr, &nexus_out)?;

    let tty = std::io::stdout().is_terminal();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "pvloom demo: soft IOC on 127.0.0.1:{} ({} PVs, {:.0} Hz), watched through pvloom's CA client;\n             LDMS daemon on {} (meminfo, loadavg, and {MIRROR} fed by the CA monitors), read through pvloom's LDMS client",
        server.port(),
        server.registry().len(),
        args.rate,
        ldms.addr,
    )?;
    writeln!(out, "             chirp echo node on {} (libchirp 1.2's wire)\n  {}", chirp.addr, chirp.round_trips(20))?;
    writeln!(
        out,
        "             recording {} and {MIRROR} into {} (NeXus, SWMR)",
        names[..2].join(", "),
        nexus_out.display()
    )?;
    let ldms_lines = ldms.lines().len();
    let start = Instant::now();
    let run_for = Duration::try_from_secs_f64(args.seconds.max(0.5)).unwrap_or(Duration::from_secs(3600));
    let mut wrote_setpoint = false;
    let mut frame = 0;
    while start.elapsed() < run_for {
        std::thread::sleep(Duration::from_millis(if tty { 100 } else { 500 }));
        let secs = start.elapsed().as_secs_f64();
        if !wrote_setpoint && secs > run_for.as_secs_f64() / 2.0 {
            // Steer the machine: the walk drifts toward the new setpoint.
            pvs[3].write(4.0)?;
            wrote_setpoint = true;
        }
        if tty && frame > 0 {
            write!(out, "\x1b[{}A", names.len() + 1 + ldms_lines)?;
        }
        ldms.poll();
        frame += 1;
        let clear = if tty { "\x1b[2K" } else { "" };
        for ((name, seen), pv) in names.iter().zip(&seen).zip(&pvs) {
            let latest = seen.latest.lock().clone();
            let text = latest.as_deref().map_or_else(|| "(waiting)".to_owned(), describe);
            let rate = seen.updates.load(Ordering::Relaxed) as f64 / secs;
            let heard = pv.time_since_last_heard().map_or(0.0, |d| d.as_secs_f64() * 1e3);
            writeln!(out, "{clear}  {name:<20} {text:<40} {rate:>7.0} upd/s  heard {heard:>5.1} ms ago")?;
        }
        let busy: Vec<String> = ctx
            .runtime()
            .thread_stats()
            .iter()
            .map(|s| format!("{} {:>4.1}%", s.name, s.busy_fraction * 100.0))
            .collect();
        for line in ldms.lines() {
            writeln!(out, "{clear}{line}")?;
        }
        writeln!(out, "{clear}  t={secs:4.1}s  client I/O threads: {}", busy.join("  "))?;
    }
    let nexus_summary = crate::demo_nexus::finish(recording)?;
    let chirp_summary = chirp.round_trips(100);
    chirp.close();
    ldms.close();
    stop.store(true, Ordering::Relaxed);
    let _ = scan.join();
    let total: u64 = seen.iter().map(|s| s.updates.load(Ordering::Relaxed)).sum();
    let units_text = match units.metadata() {
        pvloom_ca::proto::Metadata::Control { info, .. } => info.units.to_string(),
        _ => String::new(),
    };
    writeln!(
        out,
        "done: {total} monitor updates received over CA; setpoint written once; walk units '{units_text}'; {} callback failures;\n      LDMS: {} samples taken; {}\n      {chirp_summary}\n      {nexus_summary}",
        ctx.runtime().callback_failures(),
        ldms.samples(),
        ldms.summary(),
    )?;
    drop(handles);
    Ok(())
}
