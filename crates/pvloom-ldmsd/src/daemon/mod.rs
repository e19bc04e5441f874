//! The daemon: configuration commands applied to a running set server, samplers on their
//! schedules, and (aggregator mode) producers, updaters and storage policies.
//!
//! A [`Daemon`] owns one pvloom-core runtime whose I/O threads carry every LDMS connection,
//! both the peers reading this daemon's sets and, in aggregator mode, the connections to
//! its producers; a sampler thread runs the sampler plugins. Commands come from the `-c`
//! file (and `-x` flags) in order, as ldmsd processes them: the first command that fails
//! stops the start with an error naming its file and line.
//!
//! The daemon owns one message bus ([`Daemon::bus`]), off until `msg_enable` as in ldmsd:
//! every listener carries it (publishers and MSG_SUB subscribers of this daemon), and
//! the aggregator's producer connections deliver what they forward to it
//! (`prdcr_subscribe`), so messages travel sampler → aggregator → subscriber with a hop
//! counted at each daemon. A peer's SEND_MSG of exactly `{"request":"msg_stats"}` is
//! answered with a SEND_MSG carrying the bus's counters as JSON (pvloom's own request,
//! read by `pvloom ldms msg-stats`); any other SEND_MSG is an LDMSD request of `ldmsctl`
//! or `ldmsd_controller`, answered by the request thread (see `requests`).

mod aggregator;
pub mod errno;
mod requests;
mod samplers;

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use pvloom_core::Runtime;
use pvloom_ldms::bus::{BusConfig, MsgBus};
use pvloom_ldms::server::{LdmsServer, Peer, PeerEvent, ServerConfig, SetRegistry};

use crate::config::{Cmd, Command, ConfigError, PluginConfig};
use crate::sampler::{SamplerError, sampler_with_root};
use crate::store_csv::{CsvOptions, StoreError};

pub use aggregator::{ProducerState, ProducerStatus};
use samplers::{SamplerPlugin, Samplers};

/// How a daemon starts.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Where sampler plugins read `/proc` (`/` normally; tests point it at fixtures).
    pub proc_root: PathBuf,
    /// I/O threads of the runtime.
    pub io_threads: usize,
    /// Settings of every listener. Its `bus` is the daemon's bus (a new one when `None`),
    /// turned off at start; the rail connect message's `msg_enabled` follows
    /// `msg_enable` / `msg_disable` at each accept.
    pub server: ServerConfig,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions { proc_root: PathBuf::from("/"), io_threads: 2, server: ServerConfig::default() }
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration did not parse.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A command that parsed could not be carried out.
    #[error("{at}: {msg}")]
    Command {
        /// `file:line` of the command.
        at: String,
        /// What went wrong.
        msg: String,
        /// The errno ldmsd answers such a failure with (see [`errno`]).
        errno: i32,
    },
    /// The runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// A command refused: the errno ldmsd would answer with (an LDMSD response's
/// `rsp_err`) and pvloom's explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub errno: i32,
    pub msg: String,
}

impl Refusal {
    pub(crate) fn new(errno: i32, msg: impl Into<String>) -> Refusal {
        Refusal { errno, msg: msg.into() }
    }
}

/// A bare message is a bad value: EINVAL, what ldmsd answers most refusals with.
impl From<String> for Refusal {
    fn from(msg: String) -> Refusal {
        Refusal { errno: errno::EINVAL, msg }
    }
}

impl From<&str> for Refusal {
    fn from(msg: &str) -> Refusal {
        Refusal::from(msg.to_string())
    }
}

enum StorePlugin {
    Csv(Option<CsvOptions>),
}

/// A running `pvloom ldmsd`.
///
/// Its state is shared with the thread that answers LDMSD requests (`ldmsctl`,
/// `ldmsd_controller`), which holds it weakly: dropping the `Daemon` ends it all.
pub struct Daemon {
    core: Arc<Core>,
    requests: requests::RequestThread,
}

pub(crate) struct Core {
    runtime: Runtime,
    registry: Arc<SetRegistry>,
    options: Mutex<DaemonOptions>,
    servers: Mutex<Vec<LdmsServer>>,
    samplers: Samplers,
    stores: Mutex<BTreeMap<String, StorePlugin>>,
    aggregator: aggregator::Aggregator,
    bus: Arc<MsgBus>,
    /// When the daemon started: its threads' total time in `thread_stats`.
    started: std::time::Instant,
    /// Commands that changed the configuration (ldmsd's `cfg_cntr`).
    changes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("sets", &self.core.registry.len())
            .field("listening", &self.listen_addrs())
            .finish()
    }
}

impl Daemon {
    /// A daemon with no sets and no listener yet.
    ///
    /// # Errors
    /// The runtime or the sampler thread could not start.
    pub fn new(mut options: DaemonOptions) -> Result<Daemon, DaemonError> {
        let runtime =
            Runtime::builder().io_threads(options.io_threads).name("ldmsd").build().map_err(DaemonError::Runtime)?;
        let registry = SetRegistry::new();
        let bus = options.server.bus.get_or_insert_with(|| MsgBus::new(BusConfig::default())).clone();
        // ldmsd starts with the service off; `msg_enable` turns it on.
        bus.set_enabled(false);
        let aggregator = aggregator::Aggregator::new(runtime.handle(), registry.clone(), bus.clone());
        let core = Arc::new(Core {
            bus,
            runtime,
            registry,
            options: Mutex::new(options),
            servers: Mutex::new(Vec::new()),
            samplers: Samplers::new().map_err(DaemonError::Runtime)?,
            stores: Mutex::new(BTreeMap::new()),
            aggregator,
            changes: std::sync::atomic::AtomicU64::new(0),
            started: std::time::Instant::now(),
        });
        let requests = requests::RequestThread::start(Arc::downgrade(&core)).map_err(DaemonError::Runtime)?;
        Ok(Daemon { core, requests })
    }

    /// The sets this daemon serves (its samplers' and, as an aggregator, its producers').
    pub fn registry(&self) -> &Arc<SetRegistry> {
        &self.core.registry
    }

    /// The message bus: its publishers' and subscribers' (local and remote), and where
    /// the producers' forwarded messages land.
    pub fn bus(&self) -> &Arc<MsgBus> {
        &self.core.bus
    }

    /// The runtime carrying its connections.
    pub fn runtime(&self) -> &Runtime {
        &self.core.runtime
    }

    /// The addresses it listens on.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.core.servers.lock().iter().map(LdmsServer::local_addr).collect()
    }

    /// Samples taken by every sampler plugin so far.
    pub fn samples(&self) -> u64 {
        self.core.samplers.samples()
    }

    /// The producers (aggregator mode) and their connection state.
    pub fn producers(&self) -> Vec<ProducerStatus> {
        self.core.aggregator.status()
    }

    /// Parse `path` and apply every command in order.
    ///
    /// # Errors
    /// The first parse error or failed command, with its file and line.
    pub fn apply_file(&self, path: &Path) -> Result<(), DaemonError> {
        let cmds = crate::config::parse_file(path)?;
        self.apply_all(&cmds)
    }

    /// Apply commands in order, stopping at the first that fails.
    ///
    /// # Errors
    /// The failed command, with its file and line.
    pub fn apply_all(&self, cmds: &[Command]) -> Result<(), DaemonError> {
        cmds.iter().try_for_each(|c| self.apply(c))
    }

    /// Listen for LDMS peers on `addr` (`-x sock:PORT[:ADDR]`, `listen`).
    ///
    /// # Errors
    /// The bind error.
    pub fn listen(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        self.core.listen(addr, &self.requests.sender())
    }

    /// Apply one command.
    ///
    /// # Errors
    /// What went wrong, with the command's file and line.
    pub fn apply(&self, c: &Command) -> Result<(), DaemonError> {
        if let Cmd::Listen { xprt, port, host, auth } = &c.cmd {
            let at = format!("{}:{}", c.file, c.line);
            let fail = |r: Refusal| DaemonError::Command { at: at.clone(), msg: r.msg, errno: r.errno };
            check_xprt(xprt).map_err(|m| fail(m.into()))?;
            if let Some(a) = auth.as_deref().filter(|a| *a != "none") {
                return Err(fail(format!("auth {a:?} is not supported (only none)").into()));
            }
            let addr = resolve(host.as_deref().unwrap_or("0.0.0.0"), *port).map_err(|m| fail(m.into()))?;
            return self.listen(addr).map(drop).map_err(|e| fail(format!("cannot listen on {addr}: {e}").into()));
        }
        self.core.apply(c)
    }
}

impl Core {
    fn listen(&self, addr: SocketAddr, requests: &requests::RequestSender) -> std::io::Result<SocketAddr> {
        let config = self.options.lock().server.clone();
        let bus = self.bus.clone();
        let requests = requests.clone();
        let on_event = move |peer: &Peer, ev: PeerEvent| {
            if let PeerEvent::Recv(data) = ev {
                if is_pvloom_stats_request(&data) {
                    answer_stats_request(&bus, peer);
                } else {
                    requests.request(peer, data);
                }
            }
        };
        let server =
            LdmsServer::bind_with_events(self.runtime.handle(), addr, self.registry.clone(), config, on_event)?;
        let local = server.local_addr();
        tracing::info!(%local, "listening for LDMS peers (sock)");
        self.servers.lock().push(server);
        Ok(local)
    }

    /// Apply one command (every one but `listen`, which needs the request thread).
    pub(crate) fn apply(&self, c: &Command) -> Result<(), DaemonError> {
        let at = format!("{}:{}", c.file, c.line);
        tracing::debug!(%at, cmd = ?c.cmd, "config");
        self.apply_cmd(&c.cmd).map_err(|r| DaemonError::Command { at, msg: r.msg, errno: r.errno })
    }

    /// Carry out one command; the errno is what ldmsd answers the same failure with.
    pub(crate) fn apply_cmd(&self, cmd: &Cmd) -> Result<(), Refusal> {
        let fail = |errno: i32, msg: String| Refusal::new(errno, msg);
        match cmd {
            Cmd::Load { name, plugin } => self.load(name, plugin),
            Cmd::Config(cfg) => self.configure(cfg),
            Cmd::Start { name, interval_us, offset_us } => {
                let interval = u64::try_from(*interval_us).ok().filter(|&i| i > 0);
                let interval =
                    interval.ok_or_else(|| fail(errno::EINVAL, format!("interval {interval_us} must be positive")))?;
                if self.samplers.start(name, interval, offset_us.unwrap_or(0)) {
                    Ok(())
                } else {
                    Err(fail(errno::ENOENT, format!("no sampler plugin named {name:?} is loaded")))
                }
            }
            Cmd::Stop { name } => self.samplers.with(|p| match p.get_mut(name).map(|plugin| plugin.schedule.take()) {
                Some(Some(_)) => Ok(()),
                Some(None) => Err(fail(errno::EBUSY, format!("sampler {name:?} is not running"))),
                None => Err(fail(errno::ENOENT, format!("no sampler plugin named {name:?} is loaded"))),
            }),
            Cmd::Term { name } => {
                let removed = self.samplers.with(|p| p.remove(name));
                match removed {
                    Some(plugin) => {
                        plugin.sets.iter().for_each(|s| s.unpublish());
                        Ok(())
                    }
                    None if self.stores.lock().remove(name).is_some() => Ok(()),
                    None => Err(fail(errno::ENOENT, format!("no plugin named {name:?} is loaded"))),
                }
            }
            Cmd::Listen { .. } => Err(fail(errno::ENOSYS, "listen is only taken from the configuration file".into())),
            Cmd::MsgEnable => {
                self.bus.set_enabled(true);
                Ok(())
            }
            Cmd::MsgDisable => {
                self.bus.set_enabled(false);
                Ok(())
            }
            // The parser already expands `${NAME}` in later lines with these values.
            Cmd::Env { .. } => Ok(()),
            // Sets are allocated per set here, not from one preallocated pool.
            Cmd::SetMemory { .. } => Ok(()),
            other => self.aggregator.apply(other, self),
        }
    }

    fn load(&self, name: &str, plugin: &str) -> Result<(), Refusal> {
        if self.samplers.with(|p| p.contains_key(name)) || self.stores.lock().contains_key(name) {
            return Err(Refusal::new(errno::EEXIST, format!("plugin {name:?} is already loaded")));
        }
        if plugin == "store_csv" {
            self.stores.lock().insert(name.to_string(), StorePlugin::Csv(None));
            return Ok(());
        }
        let root = self.options.lock().proc_root.clone();
        let sampler = sampler_with_root(plugin, &root)
            .ok_or_else(|| Refusal::new(errno::ENOENT, format!("unknown plugin {plugin:?}")))?;
        self.samplers.with(|p| {
            let plugin = plugin.to_string();
            p.insert(name.to_string(), SamplerPlugin { plugin, sampler, sets: Vec::new(), schedule: None, failures: 0 })
        });
        Ok(())
    }

    fn configure(&self, cfg: &PluginConfig) -> Result<(), Refusal> {
        if let Some(store) = self.stores.lock().get_mut(&cfg.name) {
            let StorePlugin::Csv(opts) = store;
            *opts = Some(CsvOptions::from_config(cfg).map_err(|e: StoreError| e.to_string())?);
            return Ok(());
        }
        let registry = self.registry.clone();
        self.samplers.with(|p| {
            let plugin = p
                .get_mut(&cfg.name)
                .ok_or_else(|| Refusal::new(errno::ENOENT, format!("no plugin named {:?} is loaded", cfg.name)))?;
            let sets = plugin.sampler.configure(cfg).map_err(|e: SamplerError| e.to_string())?;
            for set in sets {
                let handle = registry.publish(set).map_err(|e| e.to_string())?;
                plugin.sets.push(handle);
            }
            Ok(())
        })
    }

    /// Whether `name` is a loaded store plugin instance.
    pub(crate) fn is_store(&self, name: &str) -> bool {
        self.stores.lock().contains_key(name)
    }

    /// The loaded store plugin instances, by name.
    pub(crate) fn store_names(&self) -> Vec<String> {
        self.stores.lock().keys().cloned().collect()
    }

    /// The options of the store plugin instance `name`, if it is loaded and configured.
    pub(crate) fn store_options(&self, name: &str) -> Option<CsvOptions> {
        match self.stores.lock().get(name)? {
            StorePlugin::Csv(o) => o.clone(),
        }
    }
}

/// The text of pvloom's `msg_stats` request (a peer's SEND_MSG).
pub const MSG_STATS_REQUEST: &str = r#"{"request":"msg_stats"}"#;

/// True for pvloom's own `{"request":"msg_stats"}` (a trailing NUL allowed).
fn is_pvloom_stats_request(data: &[u8]) -> bool {
    data.strip_suffix(&[0]).unwrap_or(data) == MSG_STATS_REQUEST.as_bytes()
}

/// Answers pvloom's `{"request":"msg_stats"}` with the bus's counters
/// (`{"enabled": .., "channels": [..], "clients": [..]}`).
fn answer_stats_request(bus: &MsgBus, peer: &Peer) {
    let mut stats = bus.stats().to_json();
    if let Some(o) = stats.as_object_mut() {
        o.insert("enabled".into(), bus.is_enabled().into());
    }
    let mut reply = stats.to_string().into_bytes();
    if reply.len() > pvloom_ldms::server::SEND_MSG_MAX {
        let channels = stats["channels"].as_array().map_or(0, Vec::len);
        let why = format!("the counters of {channels} channels exceed one message ({} bytes)", reply.len());
        reply = serde_json::json!({"error": why, "enabled": bus.is_enabled()}).to_string().into_bytes();
    }
    if let Err(e) = peer.send(reply) {
        tracing::debug!(peer = %peer.remote_addr(), "msg_stats reply not sent: {e}");
    }
}

fn check_xprt(xprt: &str) -> Result<(), String> {
    if xprt == "sock" { Ok(()) } else { Err(format!("transport {xprt:?} is not supported (only sock)")) }
}

/// `host:port` to one socket address (names through the resolver, as ldmsd does).
pub(crate) fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))
}

/// Parse ldmsd's `-x XPRT:PORT[:ADDR]`.
///
/// # Errors
/// A transport other than `sock`, or a bad port or address.
pub fn parse_listen_flag(spec: &str) -> Result<SocketAddr, String> {
    let mut parts = spec.splitn(3, ':');
    let xprt = parts.next().unwrap_or_default();
    check_xprt(xprt)?;
    let port = parts.next().ok_or("-x needs XPRT:PORT[:ADDR]")?;
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    resolve(parts.next().unwrap_or("0.0.0.0"), port)
}
