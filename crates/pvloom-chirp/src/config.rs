//! libchirp's configuration (`ch_config_t`, and the Python `Config`), its defaults,
//! the checks libchirp makes at start, and the values that follow from it.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigError;
use crate::identity::Identity;
use crate::slots::MAX_SLOTS;

/// `CH_MAX_MSG_SIZE`: 100 MiB of header and data.
pub const DEFAULT_MAX_MSG_SIZE: u32 = 100 * 1024 * 1024;
/// `CH_BUFFER_SIZE`: the read buffer when BUFFER_SIZE is 0.
pub const DEFAULT_BUFFER_SIZE: u32 = 64 * 1024;
/// `CH_MIN_BUFFER_SIZE`.
pub const MIN_BUFFER_SIZE: u32 = 1024;
/// `CH_TCP_KEEPALIVE`: seconds of idleness before TCP keepalive probes.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// The longest connect: min(2 × TIMEOUT, this).
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// A node's configuration. Field names follow libchirp's, lower-cased.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Connections (and remotes) idle longer than max(this, 3 × `timeout`) are
    /// collected. libchirp: 30 s.
    pub reuse_time: Duration,
    /// A write (in synchronous mode: until the remote's ACK) that takes longer fails
    /// and closes the connection; connecting may take min(2 × this, 60 s). 5 s.
    pub timeout: Duration,
    /// The port to listen on, announced in the handshake. 2998. (0: any free port,
    /// a pvloom addition for tests.)
    pub port: u16,
    /// Listen backlog. 100.
    pub backlog: u32,
    /// Receive slots per connection: 0 means 16 (asynchronous) or 1 (synchronous).
    pub max_slots: u8,
    /// Synchronous mode (the default): every message asks for an ACK, one message
    /// is in flight per remote, and a send completes when the remote released it.
    pub synchronous: bool,
    /// Read buffer size; 0 means 64 KiB.
    pub buffer_size: u32,
    /// The largest header + data accepted; a larger announcement closes the
    /// connection. 100 MiB.
    pub max_msg_size: u32,
    /// IPv4 address to listen on (any).
    pub bind_v4: Ipv4Addr,
    /// IPv6 address to listen on (any).
    pub bind_v6: Ipv6Addr,
    /// The node's identity; `None` (or all zero): random per start.
    pub identity: Option<Identity>,
    /// No TLS, even to remote hosts (loopback never uses TLS).
    pub disable_encryption: bool,
    /// CERT_CHAIN_PEM: one PEM file with the CA, this node's certificate chain and its
    /// private key (libchirp's layout). Required unless `disable_encryption`.
    pub cert_chain_pem: Option<PathBuf>,
    /// DH_PARAMS_PEM: PEM DH parameters. Required unless `disable_encryption`.
    pub dh_params_pem: Option<PathBuf>,
    /// Encrypt connections to 127.0.0.1 and ::1 too (libchirp's process-wide
    /// `ch_chirp_set_always_encrypt`, a testing aid; here per node).
    pub always_encrypt: bool,
    /// The Python pool's AUTO_RELEASE: a message is released when its handler returns.
    pub auto_release: bool,
    /// Messages queued per remote before `send` refuses (back-pressure; libchirp has
    /// no bound).
    pub max_queued: usize,
    /// Bytes queued per remote before `send` refuses.
    pub max_queued_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            reuse_time: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            port: 2998,
            backlog: 100,
            max_slots: 0,
            synchronous: true,
            buffer_size: 0,
            max_msg_size: DEFAULT_MAX_MSG_SIZE,
            bind_v4: Ipv4Addr::UNSPECIFIED,
            bind_v6: Ipv6Addr::UNSPECIFIED,
            identity: None,
            disable_encryption: false,
            cert_chain_pem: None,
            dh_params_pem: None,
            always_encrypt: false,
            auto_release: true,
            max_queued: 1024,
            max_queued_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Config {
    /// The TLS context libchirp would make (`None` with `disable_encryption`).
    ///
    /// # Errors
    /// A PEM file not configured (libchirp: "CERT_CHAIN_PEM must be set"), missing or
    /// refused by OpenSSL.
    pub fn tls_context(&self) -> Result<Option<crate::tls::TlsContext>, ConfigError> {
        if self.disable_encryption {
            return Ok(None);
        }
        let (Some(chain), Some(dh)) = (&self.cert_chain_pem, &self.dh_params_pem) else {
            return Err(ConfigError::Tls(
                "CERT_CHAIN_PEM and DH_PARAMS_PEM must be set unless DISABLE_ENCRYPTION".into(),
            ));
        };
        crate::tls::TlsContext::from_files(chain, dh).map(Some).map_err(|e| ConfigError::Tls(e.to_string()))
    }

    /// libchirp's start-up checks, then the derived values.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn limits(&self) -> Result<Limits, ConfigError> {
        if self.port != 0 && self.port <= 1024 {
            return Err(ConfigError::Port(self.port));
        }
        if self.backlog >= 128 {
            return Err(ConfigError::Backlog(self.backlog));
        }
        if self.timeout < Duration::from_millis(100) || self.timeout > Duration::from_secs(1200) {
            return Err(ConfigError::Timeout(self.timeout));
        }
        if self.reuse_time < Duration::from_millis(500) || self.reuse_time > Duration::from_secs(3600) {
            return Err(ConfigError::ReuseTime(self.reuse_time));
        }
        if self.timeout > self.reuse_time {
            return Err(ConfigError::TimeoutAboveReuse { timeout: self.timeout, reuse_time: self.reuse_time });
        }
        if self.synchronous && self.max_slots > 1 {
            return Err(ConfigError::Slots { slots: self.max_slots, why: "synchronous mode has one slot" });
        }
        if self.max_slots > MAX_SLOTS {
            return Err(ConfigError::Slots { slots: self.max_slots, why: "at most 32" });
        }
        if self.buffer_size != 0 && self.buffer_size < MIN_BUFFER_SIZE {
            return Err(ConfigError::BufferSize(self.buffer_size));
        }
        if self.max_queued == 0 || self.max_queued_bytes == 0 {
            return Err(ConfigError::SendQueue);
        }
        let slots = match (self.max_slots, self.synchronous) {
            (0, true) => 1,
            (0, false) => 16,
            (n, _) => n,
        };
        let reuse_time = self.reuse_time.max(self.timeout * 3);
        Ok(Limits {
            synchronous: self.synchronous,
            slots,
            timeout: self.timeout,
            reuse_time,
            connect_timeout: (self.timeout * 2).min(MAX_CONNECT_TIMEOUT),
            probe_after: reuse_time / 4 * 3,
            max_msg_size: self.max_msg_size,
            buffer_size: if self.buffer_size == 0 { DEFAULT_BUFFER_SIZE } else { self.buffer_size },
            max_queued: self.max_queued,
            max_queued_bytes: self.max_queued_bytes,
        })
    }
}

/// What a checked [`Config`] means for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Synchronous mode.
    pub synchronous: bool,
    /// Receive slots per connection (1..=32).
    pub slots: u8,
    /// Write (and synchronous ACK) timeout.
    pub timeout: Duration,
    /// Idle time after which a connection is collected: max(REUSE_TIME, 3 × TIMEOUT).
    pub reuse_time: Duration,
    /// Connect timeout, also the time a peer has to send its handshake.
    pub connect_timeout: Duration,
    /// A send on a connection idle longer than this (¾ of the reuse time) is
    /// preceded by a NOOP, so the remote's GC sees activity before the message.
    pub probe_after: Duration,
    /// The largest header + data.
    pub max_msg_size: u32,
    /// Read buffer size.
    pub buffer_size: u32,
    /// Send queue bound, in messages.
    pub max_queued: usize,
    /// Send queue bound, in bytes.
    pub max_queued_bytes: usize,
}

impl Limits {
    /// The GC's period: half the reuse time plus a random part of up to as much
    /// again (libchirp's `REUSE_TIME/2 + rand() % (REUSE_TIME/2)`), so that nodes
    /// started together do not collect in step.
    pub fn gc_period(&self, rng: &mut fastrand::Rng) -> Duration {
        let half = self.reuse_time / 2;
        let half_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_millis(rng.u64(..half_ms))
    }
}

/// How long a remote is blocked after a failed or closed connection before it may
/// be connected again: 50 ms plus up to 500 ms at random (libchirp's debounce).
pub fn reconnect_block(rng: &mut fastrand::Rng) -> Duration {
    Duration::from_millis(50 + rng.u64(..500))
}
