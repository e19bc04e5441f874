//! What the CLI tests share.

/// Loopback only, no automatic address lists: servers and clients see nothing else.
pub fn loopback_env(port: u16, repeater: u16) -> Vec<(&'static str, String)> {
    vec![
        ("EPICS_CA_SERVER_PORT", port.to_string()),
        ("EPICS_CAS_SERVER_PORT", port.to_string()),
        ("EPICS_CA_REPEATER_PORT", repeater.to_string()),
        ("EPICS_CAS_INTF_ADDR_LIST", "127.0.0.1".into()),
        ("EPICS_CAS_BEACON_ADDR_LIST", "127.0.0.1".into()),
        ("EPICS_CAS_AUTO_BEACON_ADDR_LIST", "NO".into()),
        ("EPICS_CA_AUTO_ADDR_LIST", "NO".into()),
        ("EPICS_CA_ADDR_LIST", format!("127.0.0.1:{port}")),
        ("PYTHONUNBUFFERED", "1".into()),
    ]
}
