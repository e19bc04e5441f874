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

/// Opts the process out of transparent huge pages, before anything allocates. mimalloc
/// asks for them on its arenas (its `allow_thp`), so each 2 MiB the heap touched became
/// resident whole: a pvloom ldmsd serving one set held 10 MB of anonymous memory instead
/// of 3.4 MB, and an aggregator, an IOC or a writer the same; their heaps are small and
/// short-lived, which huge pages do not speed up. It has to run before mimalloc's own
/// initialiser (an unprioritised constructor) makes its first arena: a prioritised
/// `.init_array` entry runs before those, and before `main` (so does the runtime's first
/// allocation). `MIMALLOC_ALLOW_THP=0` in the environment does the same.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array.00200")]
static DISABLE_TRANSPARENT_HUGE_PAGES: extern "C" fn() = {
    extern "C" fn disable() {
        // SAFETY: PR_SET_THP_DISABLE takes integers only and changes nothing but this
        // process's THP flag; a kernel without it returns an error, which changes nothing.
        unsafe {
            libc::prctl(
                libc::PR_SET_THP_DISABLE,
                1 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            );
        }
    }
    disable
};

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
