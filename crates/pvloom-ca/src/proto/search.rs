//! UDP helpers: packing search datagrams and making sense of replies.
//!
//! libca packs as many SEARCH requests as fit in [`MAX_UDP_SEND`] (1024)
//! bytes, each datagram led by a VERSION message whose sequence number
//! lets it match replies to search rounds; servers answer in kind.

use std::net::{Ipv4Addr, SocketAddrV4};

use bytes::{Bytes, BytesMut};

use crate::proto::command::{Command, Role};
use crate::proto::constants::{CA_MINOR_PROTOCOL_REVISION, MAX_UDP_SEND};
use crate::proto::decoder::decode_datagram;
use crate::proto::error::{DecodeError, EncodeError};

/// One PV to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchItem<'a> {
    /// Id echoed by the server (libca uses the channel's cid).
    pub search_id: u32,
    /// PV name.
    pub name: &'a str,
}

/// What a client learns from a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatagramEvent {
    /// A server has the PV searched for under `search_id`.
    Found {
        /// The request's id.
        search_id: u32,
        /// Where to open the circuit.
        server: SocketAddrV4,
        /// The server's minor version, when it said.
        version: Option<u16>,
        /// Sequence number of the datagram's VERSION, if any.
        sequence: Option<u32>,
    },
    /// A server lacks the PV (answer to a DO_REPLY search).
    NotFound {
        /// The request's id.
        search_id: u32,
    },
    /// A server beacon.
    Beacon {
        /// Where the server listens.
        server: SocketAddrV4,
        /// Beacon counter.
        beacon_id: u32,
        /// Server minor version.
        version: u16,
    },
    /// The repeater accepted our registration.
    RepeaterConfirm {
        /// Address it registered.
        address: Ipv4Addr,
    },
    /// A server reported an error for one of our datagram requests.
    Error {
        /// ECA status.
        status: u32,
        /// Server text.
        message: String,
    },
}

/// Packs and unpacks search traffic for one UDP socket.
#[derive(Debug, Clone)]
pub struct Broadcaster {
    version: u16,
    max_datagram: usize,
    sequence: u32,
    beacon_id: u32,
}

impl Default for Broadcaster {
    fn default() -> Self {
        Self::new()
    }
}

impl Broadcaster {
    /// A broadcaster speaking protocol 4.13 with libca's 1024-byte datagrams.
    pub fn new() -> Self {
        Broadcaster { version: CA_MINOR_PROTOCOL_REVISION, max_datagram: MAX_UDP_SEND, sequence: 0, beacon_id: 0 }
    }

    /// Changes the datagram size limit (e.g. to
    /// [`ETHERNET_MAX_UDP`](crate::proto::constants::ETHERNET_MAX_UDP)).
    pub fn with_max_datagram(mut self, max_datagram: usize) -> Self {
        self.max_datagram = max_datagram;
        self
    }

    /// Sequence number the next search datagram will carry.
    pub fn next_sequence(&self) -> u32 {
        self.sequence
    }

    /// Encodes searches into as few datagrams as fit, each led by a
    /// VERSION with a fresh sequence number.
    ///
    /// `do_reply` should be false for broadcasts and may be true for
    /// unicast name servers.
    pub fn search_datagrams<'a>(
        &mut self,
        items: impl IntoIterator<Item = SearchItem<'a>>,
        do_reply: bool,
    ) -> Result<Vec<Bytes>, EncodeError> {
        let version = self.version;
        let requests = items.into_iter().map(|item| Command::SearchRequest {
            name: item.name.to_owned(),
            do_reply,
            version,
            search_id: item.search_id,
        });
        let sequence = &mut self.sequence;
        pack_datagrams(self.max_datagram, requests, || {
            let this = *sequence;
            *sequence = sequence.wrapping_add(1);
            Command::DatagramVersion { version, sequence: Some(this) }
        })
    }

    /// Encodes a server's replies to the searches of one client datagram,
    /// echoing that datagram's sequence number.
    pub fn search_reply_datagrams(
        &self,
        request_sequence: Option<u32>,
        tcp_port: u16,
        search_ids: &[u32],
    ) -> Result<Vec<Bytes>, EncodeError> {
        let version = self.version;
        let replies = search_ids.iter().map(|&search_id| Command::SearchResponse {
            port: tcp_port,
            server_address: None,
            search_id,
            version: Some(version),
        });
        pack_datagrams(self.max_datagram, replies, || Command::DatagramVersion { version, sequence: request_sequence })
    }

    /// Encodes the next beacon for a server listening on `tcp_port`.
    pub fn beacon(&mut self, tcp_port: u16, address: Option<Ipv4Addr>) -> Result<Bytes, EncodeError> {
        let beacon =
            Command::Beacon { version: self.version, server_port: tcp_port, beacon_id: self.beacon_id, address };
        self.beacon_id = self.beacon_id.wrapping_add(1);
        beacon.to_bytes()
    }

    /// Decodes a datagram received by a client from `sender`, resolving
    /// server addresses the way libca does.
    pub fn client_events(datagram: Bytes, sender: SocketAddrV4) -> Result<Vec<DatagramEvent>, DecodeError> {
        let mut sequence = None;
        let mut events = Vec::new();
        for command in decode_datagram(datagram, Role::Client)? {
            match command {
                Command::DatagramVersion { sequence: datagram_sequence, .. } => sequence = datagram_sequence,
                Command::SearchResponse { port, server_address, search_id, version } => {
                    events.push(DatagramEvent::Found {
                        search_id,
                        server: SocketAddrV4::new(server_address.unwrap_or(*sender.ip()), port),
                        version,
                        sequence,
                    })
                }
                Command::NotFoundResponse { search_id, .. } => events.push(DatagramEvent::NotFound { search_id }),
                Command::Beacon { version, server_port, beacon_id, address } => events.push(DatagramEvent::Beacon {
                    server: SocketAddrV4::new(address.unwrap_or(*sender.ip()), server_port),
                    beacon_id,
                    version,
                }),
                Command::RepeaterConfirmResponse { repeater_address } => {
                    events.push(DatagramEvent::RepeaterConfirm { address: repeater_address })
                }
                Command::ErrorResponse { status, message, .. } => events.push(DatagramEvent::Error { status, message }),
                _ => {}
            }
        }
        Ok(events)
    }
}

/// Packs `commands` into datagrams of at most `max_datagram` bytes, each
/// starting with a fresh `lead` message.
pub fn pack_datagrams(
    max_datagram: usize,
    commands: impl IntoIterator<Item = Command>,
    mut lead: impl FnMut() -> Command,
) -> Result<Vec<Bytes>, EncodeError> {
    let mut datagrams = Vec::new();
    let mut current = BytesMut::new();
    let mut lead_len = 0;
    let mut scratch = BytesMut::new();
    for command in commands {
        scratch.clear();
        command.encode(&mut scratch)?;
        if !current.is_empty() && current.len() + scratch.len() > max_datagram {
            datagrams.push(current.split().freeze());
        }
        if current.is_empty() {
            lead().encode(&mut current)?;
            lead_len = current.len();
            if lead_len + scratch.len() > max_datagram {
                return Err(EncodeError::DoesNotFitDatagram { size: lead_len + scratch.len(), max: max_datagram });
            }
        }
        current.extend_from_slice(&scratch);
    }
    if current.len() > lead_len {
        datagrams.push(current.freeze());
    }
    Ok(datagrams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_fill_datagrams_and_lead_with_version() {
        let names: Vec<String> = (0..200).map(|i| format!("SOME:PV:NAME:{i:04}")).collect();
        let items = names.iter().enumerate().map(|(i, name)| SearchItem { search_id: i as u32, name });
        let mut broadcaster = Broadcaster::new();
        let datagrams = broadcaster.search_datagrams(items, false).unwrap();
        // 16-byte header + 24-byte padded name per search, 16-byte VERSION lead.
        let per_datagram = (MAX_UDP_SEND - 16) / 40;
        assert_eq!(datagrams.len(), 200usize.div_ceil(per_datagram));
        let mut seen = 0;
        for (index, datagram) in datagrams.iter().enumerate() {
            assert!(datagram.len() <= MAX_UDP_SEND);
            let commands = decode_datagram(datagram.clone(), Role::Server).unwrap();
            assert_eq!(commands[0], Command::DatagramVersion { version: 13, sequence: Some(index as u32) });
            for command in &commands[1..] {
                let Command::SearchRequest { name, search_id, do_reply, .. } = command else {
                    panic!("not a search: {command:?}");
                };
                assert_eq!(name, &names[*search_id as usize]);
                assert!(!do_reply);
                seen += 1;
            }
        }
        assert_eq!(seen, 200);
        assert_eq!(broadcaster.next_sequence(), datagrams.len() as u32);
    }

    #[test]
    fn too_long_a_name_is_refused() {
        let name = "N".repeat(2000);
        let mut broadcaster = Broadcaster::new();
        let result = broadcaster.search_datagrams([SearchItem { search_id: 1, name: &name }], false);
        assert!(matches!(result, Err(EncodeError::DoesNotFitDatagram { .. })));
    }

    #[test]
    fn search_replies_resolve_the_server_address() {
        let server = Broadcaster::new();
        let datagrams = server.search_reply_datagrams(Some(7), 5064, &[3, 4]).unwrap();
        assert_eq!(datagrams.len(), 1);
        let sender = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 5), 5064);
        let events = Broadcaster::client_events(datagrams[0].clone(), sender).unwrap();
        assert_eq!(
            events,
            vec![
                DatagramEvent::Found {
                    search_id: 3,
                    server: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 5), 5064),
                    version: Some(13),
                    sequence: Some(7),
                },
                DatagramEvent::Found {
                    search_id: 4,
                    server: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 5), 5064),
                    version: Some(13),
                    sequence: Some(7),
                },
            ]
        );
    }

    #[test]
    fn explicit_server_address_wins() {
        let reply = Command::SearchResponse {
            port: 5999,
            server_address: Some(Ipv4Addr::new(192, 0, 2, 1)),
            search_id: 9,
            version: Some(13),
        }
        .to_bytes()
        .unwrap();
        let sender = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5064);
        let events = Broadcaster::client_events(reply, sender).unwrap();
        assert_eq!(
            events,
            vec![DatagramEvent::Found {
                search_id: 9,
                server: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 5999),
                version: Some(13),
                sequence: None,
            }]
        );
    }

    #[test]
    fn beacons_count_up() {
        let mut server = Broadcaster::new();
        let first = server.beacon(5064, None).unwrap();
        let second = server.beacon(5064, None).unwrap();
        let sender = SocketAddrV4::new(Ipv4Addr::new(10, 1, 1, 1), 40000);
        let ids: Vec<u32> = [first, second]
            .into_iter()
            .flat_map(|datagram| Broadcaster::client_events(datagram, sender).unwrap())
            .map(|event| match event {
                DatagramEvent::Beacon { beacon_id, server, .. } => {
                    assert_eq!(server, SocketAddrV4::new(Ipv4Addr::new(10, 1, 1, 1), 5064));
                    beacon_id
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(ids, vec![0, 1]);
    }
}
