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
//! read by `pvloom ldms msg-stats`; ldmsd answers `msg_stats` through ldmsd_controller).

mod aggregator;
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
    },
    /// The runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

enum StorePlugin {
    Csv(Option<CsvOptions>),
}

/// A running `pvloom ldmsd`.
pub struct Daemon {
    runtime: Runtime,
    registry: Arc<SetRegistry>,
    options: Mutex<DaemonOptions>,
    servers: Mutex<Vec<LdmsServer>>,
    samplers: Samplers,
    stores: Mutex<BTreeMap<String, StorePlugin>>,
    aggregator: aggregator::Aggregator,
    bus: Arc<MsgBus>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("sets", &self.registry.len()).field("listening", &self.listen_addrs()).finish()
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
        Ok(Daemon {
            bus,
            runtime,
            registry,
            options: Mutex::new(options),
            servers: Mutex::new(Vec::new()),
            samplers: Samplers::new().map_err(DaemonError::Runtime)?,
            stores: Mutex::new(BTreeMap::new()),
            aggregator,
        })
    }

    /// The sets this daemon serves (its samplers' and, as an aggregator, its producers').
    pub fn registry(&self) -> &Arc<SetRegistry> {
        &self.registry
    }

    /// The message bus: its publishers' and subscribers' (local and remote), and where
    /// the producers' forwarded messages land.
    pub fn bus(&self) -> &Arc<MsgBus> {
        &self.bus
    }

    /// The runtime carrying its connections.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The addresses it listens on.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.servers.lock().iter().map(LdmsServer::local_addr).collect()
    }

    /// Samples taken by every sampler plugin so far.
    pub fn samples(&self) -> u64 {
        self.samplers.samples()
    }

    /// The producers (aggregator mode) and their connection state.
    pub fn producers(&self) -> Vec<ProducerStatus> {
        self.aggregator.status()
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
        let config = self.options.lock().server.clone();
        let bus = self.bus.clone();
        let on_event = move |peer: &Peer, ev: PeerEvent| {
            if let PeerEvent::Recv(data) = ev {
                answer_request(&bus, peer, &data);
            }
        };
        let server =
            LdmsServer::bind_with_events(self.runtime.handle(), addr, self.registry.clone(), config, on_event)?;
        let local = server.local_addr();
        tracing::info!(%local, "listening for LDMS peers (sock)");
        self.servers.lock().push(server);
        Ok(local)
    }

    /// Apply one command.
    ///
    /// # Errors
    /// What went wrong, with the command's file and line.
    pub fn apply(&self, c: &Command) -> Result<(), DaemonError> {
        let at = format!("{}:{}", c.file, c.line);
        let fail = |msg: String| DaemonError::Command { at: at.clone(), msg };
        tracing::debug!(%at, cmd = ?c.cmd, "config");
        match &c.cmd {
            Cmd::Load { name, plugin } => self.load(name, plugin).map_err(fail),
            Cmd::Config(cfg) => self.configure(cfg).map_err(fail),
            Cmd::Start { name, interval_us, offset_us } => {
                let interval = u64::try_from(*interval_us).ok().filter(|&i| i > 0);
                let interval = interval.ok_or_else(|| fail(format!("interval {interval_us} must be positive")))?;
                if self.samplers.start(name, interval, offset_us.unwrap_or(0)) {
                    Ok(())
                } else {
                    Err(fail(format!("no sampler plugin named {name:?} is loaded")))
                }
            }
            Cmd::Stop { name } => self.samplers.with(|p| match p.get_mut(name).map(|plugin| plugin.schedule.take()) {
                Some(Some(_)) => Ok(()),
                Some(None) => Err(fail(format!("sampler {name:?} is not running"))),
                None => Err(fail(format!("no sampler plugin named {name:?} is loaded"))),
            }),
            Cmd::Term { name } => {
                let removed = self.samplers.with(|p| p.remove(name));
                match removed {
                    Some(plugin) => {
                        plugin.sets.iter().for_each(|s| s.unpublish());
                        Ok(())
                    }
                    None if self.stores.lock().remove(name).is_some() => Ok(()),
                    None => Err(fail(format!("no plugin named {name:?} is loaded"))),
                }
            }
            Cmd::Listen { xprt, port, host, auth } => {
                check_xprt(xprt).map_err(fail)?;
                if let Some(a) = auth.as_deref().filter(|a| *a != "none") {
                    return Err(fail(format!("auth {a:?} is not supported (only none)")));
                }
                let addr = resolve(host.as_deref().unwrap_or("0.0.0.0"), *port).map_err(fail)?;
                self.listen(addr).map(drop).map_err(|e| fail(format!("cannot listen on {addr}: {e}")))
            }
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
            other => self.aggregator.apply(other, self).map_err(fail),
        }
    }

    fn load(&self, name: &str, plugin: &str) -> Result<(), String> {
        if self.samplers.with(|p| p.contains_key(name)) || self.stores.lock().contains_key(name) {
            return Err(format!("plugin {name:?} is already loaded"));
        }
        if plugin == "store_csv" {
            self.stores.lock().insert(name.to_string(), StorePlugin::Csv(None));
            return Ok(());
        }
        let root = self.options.lock().proc_root.clone();
        let sampler = sampler_with_root(plugin, &root).ok_or_else(|| format!("unknown plugin {plugin:?}"))?;
        self.samplers.with(|p| {
            p.insert(name.to_string(), SamplerPlugin { sampler, sets: Vec::new(), schedule: None, failures: 0 })
        });
        Ok(())
    }

    fn configure(&self, cfg: &PluginConfig) -> Result<(), String> {
        if let Some(store) = self.stores.lock().get_mut(&cfg.name) {
            let StorePlugin::Csv(opts) = store;
            *opts = Some(CsvOptions::from_config(cfg).map_err(|e: StoreError| e.to_string())?);
            return Ok(());
        }
        let registry = self.registry.clone();
        self.samplers.with(|p| {
            let plugin = p.get_mut(&cfg.name).ok_or_else(|| format!("no plugin named {:?} is loaded", cfg.name))?;
            let sets = plugin.sampler.configure(cfg).map_err(|e: SamplerError| e.to_string())?;
            for set in sets {
                let handle = registry.publish(set).map_err(|e| e.to_string())?;
                plugin.sets.push(handle);
            }
            Ok(())
        })
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

/// A peer's SEND_MSG: `{"request":"msg_stats"}` (a trailing NUL allowed) is answered
/// with the bus's counters (`{"enabled": .., "channels": [..], "clients": [..]}`);
/// anything else is ignored, as ldmsd ignores what it cannot parse.
fn answer_request(bus: &MsgBus, peer: &Peer, data: &[u8]) {
    let text = data.strip_suffix(&[0]).unwrap_or(data);
    if text != MSG_STATS_REQUEST.as_bytes() {
        tracing::debug!(peer = %peer.remote_addr(), len = data.len(), "SEND_MSG ignored (not a pvloom request)");
        return;
    }
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
