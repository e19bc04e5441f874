//! Numeric constants of the Channel Access wire protocol.
//!
//! Values follow EPICS base (`caProto.h`, `caerr.h`, `db_access.h`,
//! `alarm.h`, `CONFIG_ENV`); clients and servers built on this crate should
//! use these names rather than repeating the numbers.

use std::time::Duration;

/// Major protocol revision; also folded into the default port numbers.
pub const CA_MAJOR_PROTOCOL_REVISION: u16 = 4;
/// Minor protocol revision spoken by this implementation (4.13: dynamic array sizes).
pub const CA_MINOR_PROTOCOL_REVISION: u16 = 13;
/// Oldest minor revision EPICS servers answer at all.
pub const CA_MINIMUM_SUPPORTED_VERSION: u16 = 4;
/// Minor revision from which the extended (large array) header may be used.
pub const CA_V49: u16 = 9;
/// Minor revision from which UDP VERSION messages carry a sequence number.
pub const CA_V411: u16 = 11;
/// Minor revision from which SEARCH may be sent over a TCP circuit.
pub const CA_V412: u16 = 12;
/// Minor revision from which a request for zero elements means "all available".
pub const CA_V413: u16 = 13;

/// Default UDP/TCP port of CA servers (EPICS_CA_SERVER_PORT).
pub const CA_SERVER_PORT: u16 = 5064;
/// Default UDP port of the CA repeater, where beacons go (EPICS_CA_REPEATER_PORT).
pub const CA_REPEATER_PORT: u16 = 5065;

/// Lowest circuit dispatch priority a client may ask for.
pub const CA_PRIORITY_MIN: u16 = 0;
/// Highest circuit dispatch priority a client may ask for.
pub const CA_PRIORITY_MAX: u16 = 99;
/// Priority libca uses when the application asks for none.
pub const CA_PRIORITY_DEFAULT: u16 = CA_PRIORITY_MIN;

/// Size of the standard message header.
pub const HEADER_SIZE: usize = 16;
/// Size of the extended message header (standard header + payload size + count).
pub const EXTENDED_HEADER_SIZE: usize = 24;
/// Payload size/count values at or above this need the extended header.
pub const EXTENDED_MARKER: u16 = 0xFFFF;
/// Payloads are padded to a multiple of this many bytes.
pub const PAYLOAD_ALIGNMENT: usize = 8;

/// Largest datagram libca puts search requests in (`MAX_UDP_SEND`).
pub const MAX_UDP_SEND: usize = 1024;
/// Largest UDP payload that fits an Ethernet frame (1500 - 20 IP - 8 UDP).
pub const ETHERNET_MAX_UDP: usize = 1500 - 20 - 8;
/// Receive buffer size libca uses for datagrams (`0xffff + 16`).
pub const MAX_UDP_RECV: usize = 0xFFFF + 16;
/// Payload limit the spec sets for messages carried over UDP.
pub const MAX_UDP_PAYLOAD: u32 = 0x4000;
/// EPICS base's default EPICS_CA_MAX_ARRAY_BYTES (also the old `MAX_TCP`).
pub const DEFAULT_MAX_ARRAY_BYTES: u32 = 16 * 1024;
/// PV names longer than this are treated as invalid by EPICS servers.
pub const UNREASONABLE_PV_NAME_SIZE: usize = 500;

/// SEARCH reply flag: the server must answer with NOT_FOUND if it lacks the PV.
pub const DO_REPLY: u16 = 10;
/// SEARCH reply flag: the server stays silent if it lacks the PV.
pub const DONT_REPLY: u16 = 5;
/// Bit in the data type field of a UDP VERSION message: param1 holds a sequence number.
pub const SEQUENCE_NUMBER_IS_VALID: u16 = 1;
/// SEARCH reply "address" meaning "connect to the address the reply came from".
pub const SEARCH_REPLY_USE_SENDER: u32 = 0xFFFF_FFFF;
/// Payload size of a UDP SEARCH reply: the server's minor version, padded to 8.
pub const SEARCH_REPLY_PAYLOAD_SIZE: u32 = 8;

/// Longest DBR string including its terminating NUL.
pub const MAX_STRING_SIZE: usize = 40;
/// Width of the units field in GR/CTRL metadata.
pub const MAX_UNITS_SIZE: usize = 8;
/// Width of one enum state string.
pub const MAX_ENUM_STRING_SIZE: usize = 26;
/// Number of enum state strings a GR/CTRL_ENUM carries.
pub const MAX_ENUM_STATES: usize = 16;

/// Monitor mask bit: value changes beyond the monitor deadband.
pub const DBE_VALUE: u16 = 1;
/// Monitor mask bit: value changes beyond the archive deadband.
pub const DBE_LOG: u16 = 2;
/// Monitor mask bit: alarm status or severity changes.
pub const DBE_ALARM: u16 = 4;
/// Monitor mask bit: metadata (property) changes, base 3.14.11 and later.
pub const DBE_PROPERTY: u16 = 8;
/// The mask libca uses when none is given: value and alarm.
pub const DBE_DEFAULT: u16 = DBE_VALUE | DBE_ALARM;

/// Access rights bit: the client may read.
pub const ACCESS_RIGHT_READ: u32 = 1;
/// Access rights bit: the client may write.
pub const ACCESS_RIGHT_WRITE: u32 = 2;

/// Seconds from the POSIX epoch (1970) to the EPICS epoch (1990-01-01 UTC).
pub const EPICS_EPOCH_UNIX_OFFSET_SECS: u64 = 631_152_000;

/// How long libca waits for an ECHO reply before declaring the circuit unresponsive.
pub const ECHO_TIMEOUT: Duration = Duration::from_secs(5);
/// Default idle time after which a client probes the circuit (EPICS_CA_CONN_TMO).
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Default maximum beacon interval of servers (EPICS_CA_BEACON_PERIOD).
pub const BEACON_PERIOD: Duration = Duration::from_secs(15);
/// First beacon interval recommended after a server starts; it doubles up to [`BEACON_PERIOD`].
pub const BEACON_INITIAL_INTERVAL: Duration = Duration::from_millis(20);
/// Default ceiling on the interval between search retries (EPICS_CA_MAX_SEARCH_PERIOD).
pub const MAX_SEARCH_PERIOD: Duration = Duration::from_secs(300);
/// libca's lower bound for the search round trip estimate.
pub const MIN_ROUND_TRIP_ESTIMATE: Duration = Duration::from_millis(32);

/// Alarm severities carried in STS/TIME/GR/CTRL metadata (`epicsAlarmSeverity`).
pub mod severity {
    /// Not in alarm.
    pub const NO_ALARM: u16 = 0;
    /// Minor alarm.
    pub const MINOR: u16 = 1;
    /// Major alarm.
    pub const MAJOR: u16 = 2;
    /// The value cannot be trusted.
    pub const INVALID: u16 = 3;
}

/// Alarm conditions carried in the status field of DBR metadata (`epicsAlarmCondition`).
pub mod alarm_status {
    /// Not in alarm.
    pub const NO_ALARM: u16 = 0;
    /// Read error.
    pub const READ: u16 = 1;
    /// Write error.
    pub const WRITE: u16 = 2;
    /// Above the HIHI limit.
    pub const HIHI: u16 = 3;
    /// Above the HIGH limit.
    pub const HIGH: u16 = 4;
    /// Below the LOLO limit.
    pub const LOLO: u16 = 5;
    /// Below the LOW limit.
    pub const LOW: u16 = 6;
    /// State alarm.
    pub const STATE: u16 = 7;
    /// Change of state alarm.
    pub const COS: u16 = 8;
    /// Communication alarm.
    pub const COMM: u16 = 9;
    /// Timeout alarm.
    pub const TIMEOUT: u16 = 10;
    /// Hardware limit alarm.
    pub const HWLIMIT: u16 = 11;
    /// Calculation error.
    pub const CALC: u16 = 12;
    /// Scan alarm.
    pub const SCAN: u16 = 13;
    /// Link alarm.
    pub const LINK: u16 = 14;
    /// Soft alarm.
    pub const SOFT: u16 = 15;
    /// Bad subroutine.
    pub const BAD_SUB: u16 = 16;
    /// Value never defined.
    pub const UDF: u16 = 17;
    /// Record disabled.
    pub const DISABLE: u16 = 18;
    /// Record simulated.
    pub const SIMM: u16 = 19;
    /// Read access problem.
    pub const READ_ACCESS: u16 = 20;
    /// Write access problem.
    pub const WRITE_ACCESS: u16 = 21;
}

/// Severity part (low three bits) of an ECA status code.
pub mod eca_severity {
    /// Unsuccessful.
    pub const WARNING: u32 = 0;
    /// Successful.
    pub const SUCCESS: u32 = 1;
    /// Failed, continue.
    pub const ERROR: u32 = 2;
    /// Successful, informational.
    pub const INFO: u32 = 3;
    /// Failed, quit.
    pub const SEVERE: u32 = 4;
    /// `ERROR | SEVERE`.
    pub const FATAL: u32 = ERROR | SEVERE;
}

/// Builds an ECA status word the way `caerr.h`'s `DEFMSG` does:
/// message number in bits 3..16, severity in bits 0..3.
pub const fn eca_code(severity: u32, msg_no: u32) -> u32 {
    ((msg_no << 3) & 0x0000_FFF8) | (severity & 0x7)
}

macro_rules! eca_codes {
    ($($name:ident = ($sev:ident, $no:expr);)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "` status code (message ", stringify!($no), ").")]
            pub const $name: u32 = eca_code(eca_severity::$sev, $no);
        )*

        /// The `ECA_*` identifier of a status code, if it is one EPICS defines.
        pub fn eca_name(code: u32) -> Option<&'static str> {
            match code {
                $($name => Some(stringify!($name)),)*
                _ => None,
            }
        }
    };
}

eca_codes! {
    ECA_NORMAL = (SUCCESS, 0);
    ECA_MAXIOC = (ERROR, 1);
    ECA_UKNHOST = (ERROR, 2);
    ECA_UKNSERV = (ERROR, 3);
    ECA_SOCK = (ERROR, 4);
    ECA_CONN = (WARNING, 5);
    ECA_ALLOCMEM = (WARNING, 6);
    ECA_UKNCHAN = (WARNING, 7);
    ECA_UKNFIELD = (WARNING, 8);
    ECA_TOLARGE = (WARNING, 9);
    ECA_TIMEOUT = (WARNING, 10);
    ECA_NOSUPPORT = (WARNING, 11);
    ECA_STRTOBIG = (WARNING, 12);
    ECA_DISCONNCHID = (ERROR, 13);
    ECA_BADTYPE = (ERROR, 14);
    ECA_CHIDNOTFND = (INFO, 15);
    ECA_CHIDRETRY = (INFO, 16);
    ECA_INTERNAL = (FATAL, 17);
    ECA_DBLCLFAIL = (WARNING, 18);
    ECA_GETFAIL = (WARNING, 19);
    ECA_PUTFAIL = (WARNING, 20);
    ECA_ADDFAIL = (WARNING, 21);
    ECA_BADCOUNT = (WARNING, 22);
    ECA_BADSTR = (ERROR, 23);
    ECA_DISCONN = (WARNING, 24);
    ECA_DBLCHNL = (WARNING, 25);
    ECA_EVDISALLOW = (ERROR, 26);
    ECA_BUILDGET = (WARNING, 27);
    ECA_NEEDSFP = (WARNING, 28);
    ECA_OVEVFAIL = (WARNING, 29);
    ECA_BADMONID = (ERROR, 30);
    ECA_NEWADDR = (WARNING, 31);
    ECA_NEWCONN = (INFO, 32);
    ECA_NOCACTX = (WARNING, 33);
    ECA_DEFUNCT = (FATAL, 34);
    ECA_EMPTYSTR = (WARNING, 35);
    ECA_NOREPEATER = (WARNING, 36);
    ECA_NOCHANMSG = (WARNING, 37);
    ECA_DLCKREST = (WARNING, 38);
    ECA_SERVBEHIND = (WARNING, 39);
    ECA_NOCAST = (WARNING, 40);
    ECA_BADMASK = (ERROR, 41);
    ECA_IODONE = (INFO, 42);
    ECA_IOINPROGRESS = (INFO, 43);
    ECA_BADSYNCGRP = (ERROR, 44);
    ECA_PUTCBINPROG = (ERROR, 45);
    ECA_NORDACCESS = (WARNING, 46);
    ECA_NOWTACCESS = (WARNING, 47);
    ECA_ANACHRONISM = (ERROR, 48);
    ECA_NOSEARCHADDR = (WARNING, 49);
    ECA_NOCONVERT = (WARNING, 50);
    ECA_BADCHID = (ERROR, 51);
    ECA_BADFUNCPTR = (ERROR, 52);
    ECA_ISATTACHED = (WARNING, 53);
    ECA_UNAVAILINSERV = (WARNING, 54);
    ECA_CHANDESTROY = (WARNING, 55);
    ECA_BADPRIORITY = (ERROR, 56);
    ECA_NOTTHREADED = (ERROR, 57);
    ECA_16KARRAYCLIENT = (WARNING, 58);
    ECA_CONNSEQTMO = (WARNING, 59);
    ECA_UNRESPTMO = (WARNING, 60);
}

/// Message number part of an ECA status word.
pub const fn eca_msg_no(code: u32) -> u32 {
    (code & 0x0000_FFF8) >> 3
}

/// Severity part of an ECA status word (one of [`eca_severity`]).
pub const fn eca_severity_of(code: u32) -> u32 {
    code & 0x7
}

/// True when the status word reports success (the `CA_M_SUCCESS` bit).
pub const fn eca_is_success(code: u32) -> bool {
    code & 0x1 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eca_codes_match_the_published_table() {
        assert_eq!(ECA_NORMAL, 0x001);
        assert_eq!(ECA_ALLOCMEM, 0x030);
        assert_eq!(ECA_TOLARGE, 0x048);
        assert_eq!(ECA_TIMEOUT, 0x050);
        assert_eq!(ECA_BADTYPE, 0x072);
        assert_eq!(ECA_INTERNAL, 0x08e);
        assert_eq!(ECA_GETFAIL, 0x098);
        assert_eq!(ECA_PUTFAIL, 0x0a0);
        assert_eq!(ECA_BADCOUNT, 0x0b0);
        assert_eq!(ECA_BADSTR, 0x0ba);
        assert_eq!(ECA_DISCONN, 0x0c0);
        assert_eq!(ECA_BADMONID, 0x0f2);
        assert_eq!(ECA_BADMASK, 0x14a);
        assert_eq!(ECA_IODONE, 0x153);
        assert_eq!(ECA_NORDACCESS, 0x170);
        assert_eq!(ECA_NOWTACCESS, 0x178);
        assert_eq!(ECA_BADCHID, 0x19a);
        assert_eq!(ECA_DEFUNCT, 0x116);
        assert_eq!(ECA_UNRESPTMO, 0x1e0);
    }

    #[test]
    fn eca_parts_round_trip() {
        assert_eq!(eca_msg_no(ECA_NOWTACCESS), 47);
        assert_eq!(eca_severity_of(ECA_BADTYPE), eca_severity::ERROR);
        assert!(eca_is_success(ECA_NORMAL));
        assert!(!eca_is_success(ECA_TIMEOUT));
        assert_eq!(eca_name(ECA_PUTFAIL), Some("ECA_PUTFAIL"));
        assert_eq!(eca_name(7), None);
    }

    #[test]
    fn default_ports_follow_the_formula() {
        let base = 5056u16;
        assert_eq!(CA_SERVER_PORT, base + CA_MAJOR_PROTOCOL_REVISION * 2);
        assert_eq!(CA_REPEATER_PORT, CA_SERVER_PORT + 1);
    }
}
