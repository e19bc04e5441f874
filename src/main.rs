//! The `pvloom` command line.

mod ca_cmd;
mod chirp_cmd;
mod demo;
mod demo_chirp;
mod demo_ldms;
mod demo_nexus;
mod ioc_cmd;
mod ldms_cmd;
mod ldmsd_cmd;
mod nexus_cmd;
mod record_cmd;

use std::io::IsTerminal as _;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// pvloom: one runtime for EPICS Channel Access, LDMS, chirp and NeXus writing.
#[derive(Debug, Parser)]
#[command(name = "pvloom", version, about, propagate_version = true)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job on an embedded default: a soft IOC and an LDMS daemon, watched live through
    /// pvloom's CA and LDMS clients, and a chirp echo node timed with requests.
    Demo(demo::DemoArgs),
    /// A soft IOC: serve EPICS database files over Channel Access.
    Ioc(ioc_cmd::IocArgs),
    /// EPICS Channel Access tools: get, put, monitor, info, repeater.
    #[command(subcommand)]
    Ca(ca_cmd::CaCommand),
    /// LDMS tools: ls, publish, subscribe, msg-stats.
    #[command(subcommand)]
    Ldms(ldms_cmd::LdmsCommand),
    /// chirp tools (libchirp 1.2's wire): echo, send.
    #[command(subcommand)]
    Chirp(chirp_cmd::ChirpCommand),
    /// NeXus HDF5 from BLISS scans: the session writer service on a blissdata Redis.
    #[command(subcommand)]
    Nexus(nexus_cmd::NexusCommand),
    /// Record CA PVs and LDMS sets into a NeXus file as one scan (BLISS's layout).
    Record(record_cmd::RecordArgs),
    /// An LDMS daemon (samplers, aggregator, store_csv) taking ldmsd's flags and config
    /// files: `pvloom ldmsd -x sock:PORT[:ADDR] -c FILE -F -v LEVEL`.
    #[command(disable_help_flag = true)]
    Ldmsd {
        /// ldmsd's flags (see `pvloom ldmsd --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour codes only for a terminal: logs piped to a file or a journal stay plain text.
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}

/// mimalloc for the binary (daemons, IOCs, CLI): glibc's allocator was the daemon's
/// largest single cost routing small messages between I/O threads (its per-thread
/// arenas trimmed and regrew, and frees from another thread took the arena lock). The
/// libraries leave the choice to their host (the Python extension makes the same one).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Frees the calling thread's empty mimalloc pages and gives the OS every freed page the
/// arenas still hold. mimalloc only does this lazily, from a thread's later allocations
/// and frees (and purges freed pages only after `purge_delay`, 1 s): a daemon whose I/O
/// threads go quiet after a burst of traffic would keep the burst's pages committed for
/// as long as it stays quiet (a pvloom ldmsd kept 20 KB per served set so). Called about
/// once a second on each of the daemon's threads, it bounds that to a second; the cost is
/// a walk of the thread's pages and, for a thread still busy, refaulting the few pages it
/// would have reused (measured: no change in throughput or CPU per update).
pub(crate) fn release_freed_memory() {
    // SAFETY: mi_collect takes no pointers; it runs mimalloc's own collection of the
    // calling thread's heap, which any thread may do at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// mimalloc.h's `mi_option_purge_delay`: its place in `mi_option_e` (v2 and v3 alike;
/// libmimalloc-sys names that place only by its old name, which it no longer exports).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Give freed pages back to the OS as soon as they are free, not a second later
/// (mimalloc v3's default purge delay, ten seconds for its arenas): a daemon's RSS right
/// after a burst of updates was 2.2-3.8x its sets' size instead of 1.7x, at no measured
/// cost in CPU per update or per routed message. `MIMALLOC_PURGE_DELAY` in the
/// environment still decides when given.
pub(crate) fn purge_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return; // the operator's own setting stands
    }
    // SAFETY: mi_option_set takes an option index and a value, no pointers; any thread
    // may set an option at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

fn main() -> anyhow::Result<()> {
    // ldmsd's flags are its own getopt letters (`-v LEVEL` among them): parsed apart.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "ldmsd") {
        return ldmsd_cmd::main(&argv[1..]);
    }
    // `ldms ls` takes ldms_ls's own options (-h host, -v verbose): not clap's.
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 3 && args[1] == "ldms" && args[2] == "ls" && !args[3..].iter().any(|a| a == "--help") {
        init_logging(0);
        return ldms_cmd::ls(&args[3..]);
    }
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Ca(command) => ca_cmd::run(command),
        Command::Ioc(args) => ioc_cmd::run(&args),
        Command::Ldms(command) => ldms_cmd::run(command),
        Command::Chirp(command) => chirp_cmd::run(command),
        Command::Nexus(command) => nexus_cmd::run(command),
        Command::Record(args) => record_cmd::run(&args),
        Command::Ldmsd { args } => {
            let argv: Vec<_> = std::iter::once("ldmsd".into()).chain(args).collect();
            ldmsd_cmd::main(&argv)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // mimalloc reads MIMALLOC_PURGE_DELAY into this option; v3's default is 1000 ms.
        let expected = std::env::var("MIMALLOC_PURGE_DELAY").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
        // SAFETY: reading and setting an option, no pointers.
        let now = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(now, expected, "mimalloc's purge delay (ms) sits at index {MI_OPTION_PURGE_DELAY}");
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }, 0);
    }
}
