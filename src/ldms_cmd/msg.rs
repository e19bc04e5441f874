//! `pvloom ldms publish`, `subscribe` and `msg-stats`: the LDMS Message Service from the
//! command line, with `ldms_msg_publish`'s and `ldms_msg_subscribe`'s options (`-h` is
//! the host there, so help is `--help` only).

use std::io::{BufRead as _, Read as _, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use pvloom_ldms::bus::{BusConfig, MsgBus, MsgClient, MsgData};
use pvloom_ldms::client::{MsgOwner, Xprt, XprtConfig, XprtEvent, XprtEventKind};
use pvloom_ldms::msg::MsgType;

/// Where to connect: ldms_msg_publish's `-x -h -p -a`.
#[derive(Debug, Args)]
pub struct Peer {
    /// Transport (only `sock`).
    #[arg(short = 'x', long = "xprt", default_value = "sock")]
    xprt: String,
    /// The daemon's host.
    #[arg(short = 'h', long = "host", default_value = "localhost")]
    host: String,
    /// The daemon's port.
    #[arg(short = 'p', long = "port", default_value_t = 411)]
    port: u16,
    /// Authentication (only `none`).
    #[arg(short = 'a', long = "auth", default_value = "none")]
    auth: String,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

impl Peer {
    fn addr(&self) -> anyhow::Result<SocketAddr> {
        if self.xprt != "sock" {
            bail!("transport {:?} is not supported (only sock)", self.xprt);
        }
        if self.auth != "none" {
            bail!("auth {:?} is not supported (only none)", self.auth);
        }
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| format!("{} does not resolve", self.host))?
            .next()
            .with_context(|| format!("{} has no address", self.host))
    }
}

/// A connection whose forwarded messages land on `bus`, saying its message service is on
/// (as libldms does; a C ldmsd refuses MSG_SUB from a peer that says otherwise).
fn config(bus: &Arc<MsgBus>, timeout: Duration) -> XprtConfig {
    let mut c = XprtConfig { timeout, ..XprtConfig::default() };
    c.conn.bus = Some(bus.clone());
    c.conn.session.conn_msg.msg_enabled = 1;
    c
}

fn errno_text(rc: i32) -> String {
    format!("{} ({})", rc, std::io::Error::from_raw_os_error(rc))
}

/// `pvloom ldms publish`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct PublishArgs {
    #[command(flatten)]
    peer: Peer,
    /// The message name (channel, tag).
    #[arg(short = 'm', long = "msg_tag", visible_alias = "msg-tag")]
    name: String,
    /// `string` or `json` (`avro_ser` needs a schema registry: not supported).
    #[arg(short = 't', long = "type", default_value = "string")]
    msg_type: String,
    /// Read from FILE (default: standard input).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Line mode: one message per input line (the newline kept), instead of one message.
    #[arg(short = 'l', long = "line")]
    line: bool,
    /// The uid the messages carry (default: the effective uid).
    #[arg(short = 'U', long = "uid")]
    uid: Option<u32>,
    /// The gid the messages carry (default: the effective gid).
    #[arg(short = 'G', long = "gid")]
    gid: Option<u32>,
    /// Permission bits, octal (default 777, as ldms_msg_publish).
    #[arg(short = 'P', long = "perm", default_value = "777")]
    perm: String,
    /// Give up after this many seconds without room or credit (default 60).
    #[arg(short = 'g', long = "giveup", default_value_t = 60)]
    giveup: u64,
}

fn msg_type(t: &str) -> anyhow::Result<MsgType> {
    match t.to_ascii_lowercase().as_str() {
        "string" => Ok(MsgType::String),
        "json" => Ok(MsgType::Json),
        "avro_ser" => bail!("-t avro_ser is not supported (it needs a schema registry)"),
        other => bail!("the type must be 'json' or 'string', not {other:?}"),
    }
}

/// The messages to publish: the whole input, or one per line; each ends with a NUL, as
/// ldms_msg_publish sends them (C subscribers read the data as a string).
fn messages(args: &PublishArgs) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut input: Box<dyn std::io::BufRead> = match &args.file {
        Some(f) => Box::new(std::io::BufReader::new(
            std::fs::File::open(f).with_context(|| format!("cannot open {}", f.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut out = Vec::new();
    if args.line {
        loop {
            let mut line = Vec::new();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            line.push(0);
            out.push(line);
        }
    } else {
        let mut all = Vec::new();
        input.read_to_end(&mut all)?;
        all.push(0);
        out.push(all);
    }
    Ok(out)
}

/// `pvloom ldms publish`.
pub fn publish(args: &PublishArgs) -> anyhow::Result<()> {
    let t = msg_type(&args.msg_type)?;
    let perm = u32::from_str_radix(&args.perm, 8).with_context(|| format!("-P {:?}: an octal number", args.perm))?;
    let addr = args.peer.addr()?;
    let msgs = messages(args)?;
    let giveup = Duration::from_secs(args.giveup.max(1));
    let rt = pvloom_core::Runtime::new()?;
    let bus = MsgBus::new(BusConfig::default());
    // Credit comes back for every message the daemon took (or refused, with an errno).
    let returned = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicI32::new(0));
    let (r, f) = (returned.clone(), refused.clone());
    let on_event = move |_: &Xprt, ev: &XprtEvent| {
        if ev.kind == XprtEventKind::SendQuotaDeposited {
            r.fetch_add(u64::from(ev.quota), Ordering::AcqRel);
            if ev.rc != 0 {
                f.store(ev.rc, Ordering::Release);
            }
        }
    };
    let (x, wait) = Xprt::connect_with(&rt.handle(), addr, config(&bus, giveup), Some(Arc::new(on_event)));
    match wait.wait_timeout(giveup) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => bail!("cannot connect to {addr}: {e}"),
        Err(e) => bail!("cannot connect to {addr}: {e}"),
    }
    let mut owner = MsgOwner::default();
    owner.uid = args.uid.unwrap_or(owner.uid);
    owner.gid = args.gid.unwrap_or(owner.gid);
    owner.perm = perm;
    let mut sent = 0u64;
    for (i, data) in msgs.into_iter().enumerate() {
        let len = (args.name.len() + 1 + data.len()) as u64;
        if let Err(e) = x.msg_publish_with(&args.name, t, data, owner, giveup) {
            bail!("error {} at message {} publishing: {e}", errno_text(e.errno()), i + 1);
        }
        sent += len;
        let rc = refused.load(Ordering::Acquire);
        if rc != 0 {
            bail!("the daemon refused the messages: error {}", errno_text(rc));
        }
    }
    x.msg_flush(giveup).context("the messages did not go out")?;
    let end = Instant::now() + giveup;
    while returned.load(Ordering::Acquire) < sent && refused.load(Ordering::Acquire) == 0 {
        if Instant::now() >= end || !x.is_connected() {
            bail!("the daemon took {} of {sent} bytes", returned.load(Ordering::Acquire));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let rc = refused.load(Ordering::Acquire);
    x.close();
    if rc != 0 {
        bail!("the daemon refused the messages: error {}", errno_text(rc));
    }
    Ok(())
}

/// `pvloom ldms subscribe`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct SubscribeArgs {
    #[command(flatten)]
    peer: Peer,
    /// The name to subscribe to (default: every name, `.*` as a regex).
    #[arg(short = 'm', long = "msg_tag", visible_alias = "msg-tag")]
    name: Option<String>,
    /// `-m` is a regex.
    #[arg(short = 'r', long = "regex")]
    regex: bool,
    /// Write to FILE (default: standard output).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Exit after COUNT messages.
    #[arg(short = 'c', long = "count")]
    count: Option<u64>,
    /// Stop after S seconds (with -c, an error if fewer came).
    #[arg(long, value_name = "S")]
    timeout: Option<f64>,
}

/// One message as ldms_msg_subscribe prints it: JSON data as it is, anything else as
/// `msg_tag:`, `hop :`, `type:` and `data:` lines. The data ends at its first NUL (C
/// prints it as a string).
fn print_msg(out: &mut dyn Write, m: &MsgData) -> std::io::Result<()> {
    let data = m.data();
    let data = &data[..data.iter().position(|&b| b == 0).unwrap_or(data.len())];
    if m.msg_type() == MsgType::Json {
        out.write_all(data)?;
    } else {
        let sym = match m.msg_type() {
            MsgType::String => "LDMS_MSG_STRING".to_string(),
            MsgType::Json => "LDMS_MSG_JSON".to_string(),
            MsgType::AvroSer => "LDMS_MSG_AVRO_SER".to_string(),
            MsgType::Other(t) => format!("LDMS_MSG_{t}"),
        };
        writeln!(out, "msg_tag: {}", m.name())?;
        writeln!(out, "hop : {}", m.hop_cnt())?;
        writeln!(out, "type: {sym}")?;
        out.write_all(b"data: ")?;
        out.write_all(data)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// `pvloom ldms subscribe`.
pub fn subscribe(args: &SubscribeArgs) -> anyhow::Result<()> {
    let addr = args.peer.addr()?;
    let (pattern, is_regex) = match &args.name {
        Some(n) => (n.clone(), args.regex),
        None => (".*".to_string(), true),
    };
    let mut out: Box<dyn Write> = match &args.file {
        Some(f) => Box::new(std::fs::File::create(f).with_context(|| format!("cannot create {}", f.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let rt = pvloom_core::Runtime::new()?;
    let bus = MsgBus::new(BusConfig::default());
    // Queued here until printed; the daemon's credit returns as they are.
    let client = MsgClient::queue(&bus, ".*", true, 1 << 24)?;
    let x = Xprt::connect(&rt.handle(), addr, config(&bus, Duration::from_secs(10)))
        .with_context(|| format!("cannot connect to {addr}"))?;
    let st = x.msg_subscribe(&pattern, is_regex, -1).with_context(|| format!("cannot subscribe to {pattern:?}"))?;
    tracing::info!(pattern, is_regex, "subscribed: {}", st.text);
    let deadline = args.timeout.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut got = 0u64;
    while args.count.is_none_or(|c| got < c) {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            if let Some(c) = args.count {
                bail!("timed out with {got} of {c} messages");
            }
            break;
        }
        let wait = deadline.map_or(Duration::from_millis(200), |d| (d - now).min(Duration::from_millis(200)));
        match client.get_data(wait)? {
            Some(m) => {
                print_msg(&mut out, &m)?;
                got += 1;
            }
            None if !x.is_connected() => bail!("the daemon closed the connection after {got} messages"),
            None => {}
        }
    }
    out.flush()?;
    x.close();
    Ok(())
}

/// `pvloom ldms msg-stats`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct MsgStatsArgs {
    #[command(flatten)]
    peer: Peer,
    /// Seconds to wait for the answer.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    timeout: f64,
}

/// `pvloom ldms msg-stats`: pvloom's own request (SEND_MSG `{"request":"msg_stats"}`),
/// answered by `pvloom ldmsd` only.
pub fn msg_stats(args: &MsgStatsArgs) -> anyhow::Result<()> {
    let addr = args.peer.addr()?;
    let timeout = Duration::from_secs_f64(args.timeout.max(0.1));
    let rt = pvloom_core::Runtime::new()?;
    let (done, reply) = pvloom_core::completion::<Vec<u8>>();
    let done = parking_lot::Mutex::new(Some(done));
    let on_event = move |_: &Xprt, ev: &XprtEvent| {
        if ev.kind == XprtEventKind::Recv
            && let (Some(d), Some(data)) = (done.lock().take(), ev.data.as_ref())
        {
            d.succeed(data.to_vec());
        }
    };
    let config = XprtConfig { timeout, ..XprtConfig::default() };
    let (x, wait) = Xprt::connect_with(&rt.handle(), addr, config, Some(Arc::new(on_event)));
    match wait.wait_timeout(timeout) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => bail!("cannot connect to {addr}: {e}"),
        Err(e) => bail!("cannot connect to {addr}: {e}"),
    }
    x.send(pvloom_ldmsd::daemon::MSG_STATS_REQUEST.as_bytes());
    let data = reply
        .wait_timeout(timeout)
        .with_context(|| format!("no answer from {addr} (only pvloom ldmsd answers msg-stats)"))?;
    let v: serde_json::Value = serde_json::from_slice(&data).context("the answer is not JSON")?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    x.close();
    Ok(())
}
