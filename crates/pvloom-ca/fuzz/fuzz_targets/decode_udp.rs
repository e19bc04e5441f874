//! Arbitrary bytes as one datagram, decoded as received by each role.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pvloom_ca::proto::{Broadcaster, Role, decode_datagram};

fuzz_target!(|data: &[u8]| {
    let datagram = Bytes::copy_from_slice(data);
    for role in [Role::Client, Role::Server] {
        if let Ok(commands) = decode_datagram(datagram.clone(), role) {
            for command in commands {
                let _ = command.data();
                let _ = command.to_bytes();
            }
        }
    }
    let sender = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5064);
    let _ = Broadcaster::client_events(datagram, sender);
});
