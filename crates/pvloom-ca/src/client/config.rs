//! Client settings, read from the EPICS environment variables libca honours.

use std::net::{Ipv4Addr, SocketAddrV4, ToSocketAddrs};
use std::time::Duration;

use crate::proto::constants::{CA_REPEATER_PORT, CA_SERVER_PORT, CONNECTION_TIMEOUT, MAX_SEARCH_PERIOD};

/// Every setting of a client [`Context`](super::Context).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// Where searches go (`EPICS_CA_ADDR_LIST`, entries `host[:port]`).
    pub addr_list: Vec<SocketAddrV4>,
    /// Add the broadcast address of every interface (`EPICS_CA_AUTO_ADDR_LIST`, default yes).
    pub auto_addr_list: bool,
    /// Servers searched over TCP (`EPICS_CA_NAME_SERVERS`).
    pub name_servers: Vec<SocketAddrV4>,
    /// Default server port (`EPICS_CA_SERVER_PORT`, 5064).
    pub server_port: u16,
    /// Repeater port (`EPICS_CA_REPEATER_PORT`, 5065).
    pub repeater_port: u16,
    /// Silence after which a circuit is probed with an echo (`EPICS_CA_CONN_TMO`, 30 s).
    pub connection_timeout: Duration,
    /// Largest payload accepted from a server (`EPICS_CA_MAX_ARRAY_BYTES`).
    pub max_array_bytes: usize,
    /// Longest gap between two searches of an unanswered name (`EPICS_CA_MAX_SEARCH_PERIOD`).
    pub max_search_period: Duration,
    /// Default timeout of blocking calls (`CAPROTO_DEFAULT_TIMEOUT`, 2 s).
    pub timeout: Duration,
    /// Host name sent to servers (access security).
    pub host_name: String,
    /// User name sent to servers (access security).
    pub client_name: String,
}

/// Largest payload accepted when `EPICS_CA_MAX_ARRAY_BYTES` is unset. libca's
/// default (16 KiB) refuses ordinary waveforms; caproto has no limit at all. pvloom
/// takes the middle road: large arrays work, memory stays bounded.
pub const DEFAULT_MAX_ARRAY_BYTES: usize = 64 * 1024 * 1024;

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            addr_list: Vec::new(),
            auto_addr_list: true,
            name_servers: Vec::new(),
            server_port: CA_SERVER_PORT,
            repeater_port: CA_REPEATER_PORT,
            connection_timeout: CONNECTION_TIMEOUT,
            max_array_bytes: DEFAULT_MAX_ARRAY_BYTES,
            max_search_period: MAX_SEARCH_PERIOD,
            timeout: Duration::from_secs(2),
            host_name: default_host_name(),
            client_name: default_user_name(),
        }
    }
}

fn default_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn default_user_name() -> String {
    std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "pvloom".to_owned())
}

/// Why an environment variable could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?}: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ClientConfig {
    /// Settings from the process environment.
    ///
    /// # Errors
    /// A variable that is set but cannot be parsed.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Settings from any variable lookup (tests pass a map).
    ///
    /// # Errors
    /// A variable that is set but cannot be parsed.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = ClientConfig::default();
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if let Some(port) = get("EPICS_CA_SERVER_PORT") {
            config.server_port = parse_port("EPICS_CA_SERVER_PORT", &port)?;
        }
        if let Some(port) = get("EPICS_CA_REPEATER_PORT") {
            config.repeater_port = parse_port("EPICS_CA_REPEATER_PORT", &port)?;
        }
        if let Some(list) = get("EPICS_CA_ADDR_LIST") {
            config.addr_list = parse_addr_list("EPICS_CA_ADDR_LIST", &list, config.server_port)?;
        }
        if let Some(auto) = get("EPICS_CA_AUTO_ADDR_LIST") {
            config.auto_addr_list = !auto.eq_ignore_ascii_case("no");
        }
        if let Some(list) = get("EPICS_CA_NAME_SERVERS") {
            config.name_servers = parse_addr_list("EPICS_CA_NAME_SERVERS", &list, config.server_port)?;
        }
        if let Some(secs) = get("EPICS_CA_CONN_TMO") {
            // libca never probes more often than every 0.1 s.
            config.connection_timeout = parse_seconds("EPICS_CA_CONN_TMO", &secs)?.max(Duration::from_millis(100));
        }
        if let Some(secs) = get("EPICS_CA_MAX_SEARCH_PERIOD") {
            // libca's floor is 60 s.
            config.max_search_period = parse_seconds("EPICS_CA_MAX_SEARCH_PERIOD", &secs)?.max(Duration::from_secs(60));
        }
        if let Some(bytes) = get("EPICS_CA_MAX_ARRAY_BYTES") {
            let parsed: usize = bytes.parse().map_err(|_| ConfigError {
                variable: "EPICS_CA_MAX_ARRAY_BYTES",
                value: bytes.clone(),
                reason: "not a whole number of bytes".into(),
            })?;
            config.max_array_bytes = parsed.max(16_384);
        }
        if let Some(secs) = get("CAPROTO_DEFAULT_TIMEOUT") {
            config.timeout = parse_seconds("CAPROTO_DEFAULT_TIMEOUT", &secs)?;
        }
        Ok(config)
    }

    /// The search destinations: the address list plus, with `auto_addr_list`, the
    /// broadcast address of every IPv4 interface.
    pub fn search_destinations(&self) -> Vec<SocketAddrV4> {
        let mut destinations = self.addr_list.clone();
        if self.auto_addr_list {
            for broadcast in interface_broadcasts() {
                destinations.push(SocketAddrV4::new(broadcast, self.server_port));
            }
        }
        destinations.sort();
        destinations.dedup();
        destinations
    }
}

fn interface_broadcasts() -> Vec<Ipv4Addr> {
    let mut found: Vec<Ipv4Addr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|iface| match iface.addr {
            if_addrs::IfAddr::V4(v4) => v4.broadcast.or(if v4.ip.is_loopback() { Some(v4.ip) } else { None }),
            if_addrs::IfAddr::V6(_) => None,
        })
        .collect();
    if found.is_empty() {
        found.push(Ipv4Addr::BROADCAST);
    }
    found
}

fn parse_port(variable: &'static str, value: &str) -> Result<u16, ConfigError> {
    value.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| ConfigError {
        variable,
        value: value.to_owned(),
        reason: "not a port number (1-65535)".into(),
    })
}

fn parse_seconds(variable: &'static str, value: &str) -> Result<Duration, ConfigError> {
    value.parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok()).ok_or_else(|| ConfigError {
        variable,
        value: value.to_owned(),
        reason: "not a non-negative number of seconds".into(),
    })
}

/// Parse `host[:port] host[:port] ...`; host names are resolved once, here.
fn parse_addr_list(variable: &'static str, list: &str, default_port: u16) -> Result<Vec<SocketAddrV4>, ConfigError> {
    list.split_whitespace()
        .map(|entry| {
            let error = |reason: &str| ConfigError { variable, value: entry.to_owned(), reason: reason.to_owned() };
            let (host, port) = match entry.rsplit_once(':') {
                Some((host, port)) => (host, port.parse::<u16>().map_err(|_| error("bad port"))?),
                None => (entry, default_port),
            };
            if let Ok(ip) = host.parse::<Ipv4Addr>() {
                return Ok(SocketAddrV4::new(ip, port));
            }
            (host, port)
                .to_socket_addrs()
                .map_err(|e| error(&format!("cannot resolve: {e}")))?
                .find_map(|a| match a {
                    std::net::SocketAddr::V4(v4) => Some(v4),
                    std::net::SocketAddr::V6(_) => None,
                })
                .ok_or_else(|| error("no IPv4 address"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<ClientConfig, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ClientConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn reads_the_epics_variables() {
        let c = config(&[
            ("EPICS_CA_ADDR_LIST", "127.0.0.1 127.0.0.2:6000"),
            ("EPICS_CA_AUTO_ADDR_LIST", "NO"),
            ("EPICS_CA_SERVER_PORT", "7064"),
            ("EPICS_CA_REPEATER_PORT", "7065"),
            ("EPICS_CA_CONN_TMO", "5.5"),
            ("EPICS_CA_MAX_ARRAY_BYTES", "100"),
            ("EPICS_CA_NAME_SERVERS", "127.0.0.3:9000"),
            ("CAPROTO_DEFAULT_TIMEOUT", "0.5"),
        ])
        .unwrap();
        assert_eq!(
            c.addr_list,
            vec!["127.0.0.1:7064".parse().unwrap(), "127.0.0.2:6000".parse().unwrap()],
            "default port follows EPICS_CA_SERVER_PORT"
        );
        assert!(!c.auto_addr_list);
        assert_eq!((c.server_port, c.repeater_port), (7064, 7065));
        assert_eq!(c.connection_timeout, Duration::from_secs_f64(5.5));
        assert_eq!(c.max_array_bytes, 16_384, "libca's floor");
        assert_eq!(c.name_servers, vec!["127.0.0.3:9000".parse().unwrap()]);
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert_eq!(c.search_destinations(), c.addr_list);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = config(&[("EPICS_CA_SERVER_PORT", "http")]).unwrap_err();
        assert_eq!(err.variable, "EPICS_CA_SERVER_PORT");
        assert!(config(&[("EPICS_CA_ADDR_LIST", "1.2.3.4:x")]).is_err());
        assert!(config(&[("EPICS_CA_CONN_TMO", "-1")]).is_err());
    }
}
