//! `pvloom ca get|put|monitor|info|repeater`: EPICS base's command-line tools.

mod format;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use pvloom_ca::client::{CaError, Context, DbrClass, DbrType, Pv, ReadOptions, SubscribeOptions, Value, WriteOptions};
use pvloom_ca::proto::constants::{DBE_ALARM, DBE_VALUE};

use format::ValueStyle;

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Read PVs (caget).
    Get(GetArgs),
    /// Write a PV (caput).
    Put(PutArgs),
    /// Print updates of PVs until interrupted (camonitor).
    Monitor(MonitorArgs),
    /// Describe PVs: server, access, type, count (cainfo).
    Info(InfoArgs),
    /// Run a CA repeater in the foreground (caRepeater).
    Repeater(RepeaterArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// Wait time in seconds for connections and replies.
    #[arg(short = 'w', default_value_t = 1.0)]
    wait: f64,
    /// Enums as numbers.
    #[arg(short = 'n')]
    enum_as_number: bool,
    /// Char arrays as strings.
    #[arg(short = 'S')]
    char_as_string: bool,
    /// Floats with %e and this precision.
    #[arg(short = 'e', value_name = "PREC")]
    exp: Option<usize>,
    /// Floats with %f and this precision.
    #[arg(short = 'f', value_name = "PREC")]
    fixed: Option<usize>,
    /// Floats with %g and this precision.
    #[arg(short = 'g', value_name = "PREC")]
    general: Option<usize>,
}

impl Common {
    fn style(&self) -> ValueStyle {
        let float = self.exp.map(|p| ('e', p)).or(self.fixed.map(|p| ('f', p))).or(self.general.map(|p| ('g', p)));
        ValueStyle { enum_as_number: self.enum_as_number, char_as_string: self.char_as_string, float }
    }

    fn timeout(&self) -> Duration {
        // `-w inf` or absurd values mean "a very long time", never a panic.
        Duration::try_from_secs_f64(self.wait.max(0.001)).unwrap_or(Duration::from_secs(86_400 * 365))
    }

    fn context(&self) -> anyhow::Result<Context> {
        Context::builder().timeout(self.timeout()).build().context("starting the CA client")
    }
}

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    common: Common,
    /// Terse: values only.
    #[arg(short = 't')]
    terse: bool,
    /// Wide: name, timestamp, value and alarm.
    #[arg(short = 'a')]
    wide: bool,
    /// Request this DBR type (name like DBR_TIME_DOUBLE, or its number) and print every field.
    #[arg(short = 'd', value_name = "TYPE")]
    data_type: Option<String>,
    /// Element count to request.
    #[arg(short = '#', value_name = "COUNT")]
    count: Option<u32>,
    /// PV names.
    #[arg(required = true)]
    pvs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    common: Common,
    /// Terse: print the new value only.
    #[arg(short = 't')]
    terse: bool,
    /// Wait for the put to complete (write with notify).
    #[arg(short = 'c')]
    callback: bool,
    /// The values form an array (caput -a; the count may be given first).
    #[arg(short = 'a')]
    array: bool,
    /// PV name.
    pv: String,
    /// Value(s).
    #[arg(required = true, allow_hyphen_values = true)]
    values: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    common: Common,
    /// Event mask: any of v (value), a (alarm), l (log), p (property).
    #[arg(short = 'm', default_value = "va")]
    mask: String,
    /// Element count to request.
    #[arg(short = '#', value_name = "COUNT")]
    count: Option<u32>,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    seconds: Option<f64>,
    /// PV names.
    #[arg(required = true)]
    pvs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    common: Common,
    /// PV names.
    #[arg(required = true)]
    pvs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RepeaterArgs {
    /// UDP port (default: EPICS_CA_REPEATER_PORT or 5065).
    #[arg(short = 'p', long, env = "EPICS_CA_REPEATER_PORT", default_value_t = 5065)]
    port: u16,
}

pub fn run(command: CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Get(args) => get(&args),
        CaCommand::Put(args) => put(&args),
        CaCommand::Monitor(args) => monitor(&args),
        CaCommand::Info(args) => info(&args),
        CaCommand::Repeater(args) => {
            pvloom_ca::repeater::run_repeater(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, args.port))
                .with_context(|| format!("CA repeater on port {}", args.port))
        }
    }
}

fn parse_dbr_type(text: &str) -> anyhow::Result<DbrType> {
    if let Ok(code) = text.parse::<u16>() {
        return DbrType::from_code(code).map_err(|e| anyhow::anyhow!("{e}"));
    }
    let wanted = text.to_ascii_uppercase();
    let wanted = wanted.strip_prefix("DBR_").unwrap_or(&wanted);
    DbrType::ALL
        .into_iter()
        .find(|t| t.name().strip_prefix("DBR_").unwrap_or(t.name()) == wanted)
        .with_context(|| format!("unknown DBR type {text:?}"))
}

/// Connect all PVs, reporting the ones that do not connect as caget does.
fn connect(ctx: &Context, names: &[String], timeout: Duration) -> Vec<(String, Option<Pv>)> {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    ctx.get_pvs(&refs)
        .into_iter()
        .zip(names)
        .map(|(pv, name)| match pv.wait_for_connection(Some(timeout)) {
            Ok(()) => (name.clone(), Some(pv)),
            Err(_) => {
                eprintln!("Channel connect timed out: '{name}' not found.");
                (name.clone(), None)
            }
        })
        .collect()
}

fn get(args: &GetArgs) -> anyhow::Result<()> {
    let ctx = args.common.context()?;
    let explicit = args.data_type.as_deref().map(parse_dbr_type).transpose()?;
    let style = args.common.style();
    let mut failed = false;
    for (name, pv) in connect(&ctx, &args.pvs, args.common.timeout()) {
        let Some(pv) = pv else {
            failed = true;
            continue;
        };
        let class = if args.wide {
            Some(DbrClass::Time)
        } else if explicit.is_none() && pv.native_type().is_some_and(|t| t == DbrType::Enum) && !style.enum_as_number {
            // Enum strings come with the control class.
            Some(DbrClass::Control)
        } else {
            None
        };
        let options = ReadOptions {
            data_type: explicit,
            class,
            data_count: args.count,
            timeout: Some(args.common.timeout()),
            notify: true,
        };
        match pv.read_with(options) {
            Ok(reading) => match explicit {
                Some(_) => println!("{}", format::caget_detailed(&name, pv.native_type(), &reading, style)),
                None => println!("{}", format::caget_line(&name, &reading, args.terse, args.wide, style)),
            },
            Err(err) => {
                eprintln!("Read operation timed out or failed for {name}: {err}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// Values from the command line, typed after the channel's native type.
fn parse_values(native: DbrType, texts: &[String], array: bool) -> anyhow::Result<Value> {
    let texts: &[String] = if array && texts.len() > 1 && texts[0].parse::<usize>().is_ok_and(|n| n == texts.len() - 1)
    {
        &texts[1..]
    } else {
        texts
    };
    let joined;
    let texts: &[String] = if !array && texts.len() > 1 {
        joined = [texts.join(" ")];
        &joined
    } else {
        texts
    };
    let numbers = || -> anyhow::Result<Vec<f64>> {
        texts.iter().map(|t| t.parse::<f64>().with_context(|| format!("{t:?} is not a number"))).collect()
    };
    Ok(match native.native() {
        pvloom_ca::proto::NativeType::String | pvloom_ca::proto::NativeType::Enum => {
            if native.native() == pvloom_ca::proto::NativeType::Enum && texts.iter().all(|t| t.parse::<u16>().is_ok()) {
                Value::Enum(texts.iter().map(|t| t.parse().unwrap_or(0)).collect())
            } else {
                Value::String(texts.iter().map(|t| t.as_str().into()).collect())
            }
        }
        pvloom_ca::proto::NativeType::Char if texts.len() == 1 && texts[0].parse::<f64>().is_err() => {
            let mut bytes = texts[0].clone().into_bytes();
            bytes.push(0);
            Value::Char(bytes)
        }
        _ => Value::Double(numbers()?),
    })
}

fn put(args: &PutArgs) -> anyhow::Result<()> {
    let ctx = args.common.context()?;
    let timeout = args.common.timeout();
    let style = args.common.style();
    let Some(pv) = connect(&ctx, std::slice::from_ref(&args.pv), timeout).remove(0).1 else {
        std::process::exit(1);
    };
    let native = pv.native_type().context("connected PV has a type")?;
    let read = |pv: &Pv| {
        let class = (native == DbrType::Enum && !style.enum_as_number).then_some(DbrClass::Control);
        pv.read_with(ReadOptions { class, timeout: Some(timeout), notify: true, ..Default::default() })
    };
    let old = read(&pv).ok();
    let value = parse_values(native, &args.values, args.array)?;
    let outcome = pv.write_with(value, WriteOptions { notify: args.callback, timeout: Some(timeout), data_type: None });
    if let Err(err) = outcome {
        match err {
            CaError::NoWriteAccess { .. } => eprintln!("Error from put operation: Write access denied"),
            other => eprintln!("Error from put operation: {other}"),
        }
        std::process::exit(1);
    }
    let new = read(&pv).map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.terse {
        println!("{}", format::value_column(&new, style));
    } else {
        if let Some(old) = old {
            println!("Old : {}", format::caget_line(&args.pv, &old, false, false, style));
        }
        println!("New : {}", format::caget_line(&args.pv, &new, false, false, style));
    }
    Ok(())
}

fn parse_mask(text: &str) -> anyhow::Result<u16> {
    let mut mask = 0;
    for c in text.chars() {
        mask |= match c {
            'v' => DBE_VALUE,
            'a' => DBE_ALARM,
            'l' => pvloom_ca::proto::constants::DBE_LOG,
            'p' => pvloom_ca::proto::constants::DBE_PROPERTY,
            other => bail!("unknown mask letter {other:?} (use v, a, l, p)"),
        };
    }
    Ok(mask)
}

fn monitor(args: &MonitorArgs) -> anyhow::Result<()> {
    let ctx = args.common.context()?;
    let mask = parse_mask(&args.mask)?;
    let style = args.common.style();
    let (tx, rx) = mpsc::channel::<String>();
    let mut handles = Vec::new();
    let refs: Vec<&str> = args.pvs.iter().map(String::as_str).collect();
    for pv in ctx.get_pvs(&refs) {
        let name = pv.name().to_owned();
        let sub = pv.subscribe(SubscribeOptions {
            class: DbrClass::Time,
            data_count: args.count,
            mask,
            ..Default::default()
        });
        let updates = tx.clone();
        handles.push(sub.add_callback(move |update| {
            let _ = updates.send(format::camonitor_line(&name, &update, style));
        }));
        let notices = tx.clone();
        pv.add_connection_callback(move |pv, state| {
            if state == pvloom_ca::client::ConnectionState::Disconnected {
                let _ = notices.send(format!("{:<30} *** disconnected", pv.name()));
            }
        });
        let name = pv.name().to_owned();
        if pv.wait_for_connection(Some(args.common.timeout())).is_err() {
            eprintln!("{name} *** Not connected (PV not found)");
        }
    }
    drop(tx);
    let deadline = args
        .seconds
        .and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok())
        .and_then(|d| std::time::Instant::now().checked_add(d));
    loop {
        let wait =
            deadline.map_or(Duration::from_secs(3600), |d| d.saturating_duration_since(std::time::Instant::now()));
        match rx.recv_timeout(wait) {
            Ok(line) => println!("{line}"),
            Err(mpsc::RecvTimeoutError::Timeout) if deadline.is_some() => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    drop(handles);
    Ok(())
}

fn info(args: &InfoArgs) -> anyhow::Result<()> {
    let ctx = args.common.context()?;
    let mut failed = false;
    for (name, pv) in connect(&ctx, &args.pvs, args.common.timeout()) {
        let Some(pv) = pv else {
            failed = true;
            continue;
        };
        let rights = pv.access_rights();
        let access = match (rights.can_read(), rights.can_write()) {
            (true, true) => "read, write",
            (true, false) => "read, no write",
            (false, true) => "no read, write",
            (false, false) => "no read, no write",
        };
        let native = pv.native_type().map_or("?".to_owned(), |t| t.name().replacen("DBR_", "DBF_", 1));
        println!("{name}");
        println!("    State:            connected");
        println!("    Host:             {}", pv.server_address().map_or("?".into(), |a| a.to_string()));
        println!("    Access:           {access}");
        println!("    Native data type: {native}");
        println!("    Request type:     {}", pv.native_type().map_or("?", |t| t.name()));
        println!("    Element count:    {}", pv.element_count().unwrap_or(0));
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
