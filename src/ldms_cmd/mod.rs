//! `pvloom ldms …`: LDMS client tools.
//!
//! `pvloom ldms ls` takes ldms_ls's options (`-h` is the host and `-v` verbose, as there),
//! so its arguments are parsed here, not by clap. `publish`, `subscribe` and `msg-stats`
//! ([`msg`]) take ldms_msg_publish's letters through clap, help being `--help` only.

mod msg;

use std::io::Write as _;
use std::net::ToSocketAddrs;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use pvloom_ldms::client::{Xprt, XprtConfig, format};
use pvloom_ldms::request::dir::DirEntry;

/// LDMS tools.
#[derive(Debug, Subcommand)]
pub enum LdmsCommand {
    /// List the sets of an ldmsd, as ldms_ls does: `ls [-l] [-v] [-x sock] -h HOST -p PORT [-E] [NAME...]`.
    Ls {
        /// ldms_ls's arguments.
        #[arg(allow_hyphen_values = true, trailing_var_arg = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Publish messages to a daemon, as ldms_msg_publish does:
    /// `publish -x sock -h HOST -p PORT -m NAME [-t string|json] [-f FILE] [-l]`.
    /// Without -f it reads standard input; -l publishes one message per line.
    Publish(msg::PublishArgs),
    /// Subscribe at a daemon and print what it forwards, in ldms_msg_subscribe's format:
    /// `subscribe -x sock -h HOST -p PORT [-m NAME [-r]] [-f OUT] [-c COUNT] [--timeout S]`.
    /// Unlike ldms_msg_subscribe (which listens for publishers), it connects and sends
    /// MSG_SUB, as an ldmsd aggregator's prdcr_subscribe does.
    Subscribe(msg::SubscribeArgs),
    /// Print a pvloom ldmsd's message counters (per channel, per source, per client) as
    /// JSON: `msg-stats -x sock -h HOST -p PORT`. This is pvloom's own request (a SEND_MSG
    /// of `{"request":"msg_stats"}`), answered by `pvloom ldmsd` only; for a C ldmsd use
    /// `ldmsd_controller`'s `msg_stats`.
    #[command(name = "msg-stats")]
    MsgStats(msg::MsgStatsArgs),
}

/// Run an LDMS command.
pub fn run(command: LdmsCommand) -> anyhow::Result<()> {
    match command {
        LdmsCommand::Ls { args } => ls(&args),
        LdmsCommand::Publish(args) => msg::publish(&args),
        LdmsCommand::Subscribe(args) => msg::subscribe(&args),
        LdmsCommand::MsgStats(args) => msg::msg_stats(&args),
    }
}

#[derive(Debug)]
struct LsOptions {
    host: String,
    port: u16,
    long: bool,
    verbose: u32,
    regex: bool,
    schema: bool,
    wait: Duration,
    names: Vec<String>,
}

fn parse(args: &[String]) -> anyhow::Result<LsOptions> {
    let mut o = LsOptions {
        host: "localhost".into(),
        port: 411,
        long: false,
        verbose: 0,
        regex: false,
        schema: false,
        wait: Duration::from_secs(10),
        names: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            o.names.push(a.clone());
            continue;
        };
        for (i, c) in flags.char_indices() {
            let mut value = || -> anyhow::Result<String> {
                let rest = &flags[i + 1..];
                if rest.is_empty() {
                    it.next().cloned().with_context(|| format!("-{c} needs a value"))
                } else {
                    Ok(rest.to_string())
                }
            };
            match c {
                'l' => o.long = true,
                'v' => o.verbose += 1,
                'E' => o.regex = true,
                'S' => o.schema = true,
                'I' => o.schema = false,
                'h' => {
                    o.host = value()?;
                    break;
                }
                'p' => {
                    o.port = value()?.parse().context("-p: invalid port number")?;
                    break;
                }
                'x' => {
                    let x = value()?;
                    if x != "sock" {
                        bail!("transport {x:?} is not supported (only sock)");
                    }
                    break;
                }
                'w' => {
                    o.wait = Duration::from_secs(value()?.parse().context("-w: seconds")?);
                    break;
                }
                _ => bail!("unknown option -{c}"),
            }
        }
    }
    Ok(o)
}

/// `pvloom ldms ls`.
pub fn ls(args: &[String]) -> anyhow::Result<()> {
    let o = parse(args)?;
    let addr = (o.host.as_str(), o.port)
        .to_socket_addrs()
        .with_context(|| format!("{} does not resolve", o.host))?
        .next()
        .with_context(|| format!("{} does not resolve", o.host))?;
    let patterns = o
        .names
        .iter()
        .map(|n| regex::Regex::new(&if o.regex { n.clone() } else { format!("^{}$", regex::escape(n)) }))
        .collect::<Result<Vec<_>, _>>()?;
    let rt = pvloom_core::Runtime::new()?;
    let config = XprtConfig { timeout: o.wait, ..XprtConfig::default() };
    let out = std::io::stdout();
    let mut out = out.lock();
    let xprt = match Xprt::connect(&rt.handle(), addr, config) {
        Ok(x) => x,
        Err(e) => {
            tracing::info!("connect: {e}");
            writeln!(out, "Connection failed/rejected.")?;
            std::process::exit(1);
        }
    };
    let dir = match xprt.dir() {
        Ok(d) => d,
        Err(e) => {
            writeln!(out, "Error {} looking up the metric set directory.", e.errno())?;
            std::process::exit(3);
        }
    };
    // ldms_ls lists the matching sets in the reverse of the directory's order.
    let mut sets: Vec<DirEntry> = dir
        .into_iter()
        .filter(|e| {
            let name = if o.schema { &e.schema } else { &e.name };
            patterns.is_empty() || patterns.iter().any(|p| p.is_match(name))
        })
        .collect();
    sets.reverse();
    if o.verbose > 0 {
        write!(out, "{}", format::verbose_table(&sets, o.long))?;
    } else if !o.long {
        for e in &sets {
            writeln!(out, "{}", e.name)?;
        }
    }
    if o.long {
        for e in &sets {
            let found = match xprt.lookup(&e.name, pvloom_ldms::request::LOOKUP_BY_INSTANCE) {
                Ok(f) => f,
                Err(err) => {
                    writeln!(out, "ldms_ls: Error {} looking up metric set.", err.errno())?;
                    continue;
                }
            };
            for set in found {
                match set.update() {
                    Ok(snap) => write!(out, "{}", format::set_block(set.name(), &snap, 0))?,
                    Err(err) => write!(out, "{}", format::update_error(err.errno()))?,
                }
            }
        }
    }
    out.flush()?;
    xprt.close();
    std::thread::sleep(Duration::from_millis(20));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_as_ldms_ls_takes_them() {
        let a: Vec<String> = ["-l", "-v", "-x", "sock", "-h", "127.0.0.1", "-p11100", "-E", "node.*"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = parse(&a).unwrap();
        assert!(o.long && o.regex);
        assert_eq!((o.verbose, o.host.as_str(), o.port, o.names.len()), (1, "127.0.0.1", 11100, 1));
        let o = parse(&["-lvv".to_string()]).unwrap();
        assert_eq!(o.verbose, 2);
        assert!(parse(&["-x".into(), "rdma".into()]).is_err());
    }
}
