//! The sans-I/O core of one client's circuit on the server: requests in, replies and
//! subscription updates out, every one checked by the protocol state machine.
//! That state machine's book is also the circuit's one table: each channel carries
//! the PV it serves with the client's rights, each subscription its
//! [`ServerSubscription`].

use std::sync::Arc;
use std::time::Instant;

use pvloom_core::bytes::BytesMut;
use pvloom_core::endpoint::{CloseReason, StreamEndpoint};

use super::outbox::Outbox;
use super::registry::{ServedPv, ServerSubscription};
use crate::proto::command::{AccessRights, Command, Role};
use crate::proto::state::{BookPayloads, CircuitBook};
use crate::proto::{Circuit, CircuitConfig, CircuitError};

/// Replies waiting to be sent above which the circuit takes no further requests: a
/// client that asks without reading the answers gets back-pressure, not server memory.
pub(crate) const MAX_UNSENT: usize = 4 * 1024 * 1024;

/// A channel as this server serves it to the client (its book entry's payload).
pub(crate) struct ServedChannel {
    pub(crate) pv: Arc<ServedPv>,
    pub(crate) rights: AccessRights,
}

/// What a server circuit's book carries.
pub(crate) struct ServerTables;

impl BookPayloads for ServerTables {
    type Channel = ServedChannel;
    type Io = ();
    type Sub = Arc<ServerSubscription>;
}

pub(crate) struct ServerEndpoint {
    proto: Circuit<ServerTables>,
    version: u16,
    replies: BytesMut,
    outbox: Arc<Outbox>,
    /// Updates taken from the outbox, encoded outside its lock (kept for its capacity).
    batch: Vec<Command>,
    close: Option<CloseReason>,
}

impl ServerEndpoint {
    pub(crate) fn new(config: CircuitConfig, outbox: Arc<Outbox>) -> Self {
        ServerEndpoint {
            proto: Circuit::with_payloads(Role::Server, config),
            version: config.version,
            replies: BytesMut::with_capacity(4096),
            batch: Vec::new(),
            outbox,
            close: None,
        }
    }

    /// The channels and subscriptions (with what they serve).
    pub(crate) fn book(&self) -> &CircuitBook<ServerTables> {
        self.proto.book()
    }

    /// The channels and subscriptions, to attach, change or take payloads.
    pub(crate) fn book_mut(&mut self) -> &mut CircuitBook<ServerTables> {
        self.proto.book_mut()
    }

    /// Queue one reply; the circuit's rules may refuse it.
    pub(crate) fn reply(&mut self, command: &Command) -> Result<(), CircuitError> {
        self.proto.send_into(command, &mut self.replies)
    }

    /// Queue the subscription updates waiting now ahead of the next reply (a write's
    /// confirmation goes after the updates it caused, as clients of rsrv observe).
    pub(crate) fn take_updates(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        self.outbox.take(usize::MAX, &mut batch);
        for update in batch.drain(..) {
            encode_update(&mut self.proto, &update, &mut self.replies);
        }
        self.batch = batch;
    }

    pub(crate) fn close(&mut self, reason: CloseReason) {
        self.close.get_or_insert(reason);
    }
}

fn encode_update(proto: &mut Circuit<ServerTables>, update: &Command, out: &mut BytesMut) {
    // Refused when the subscription ended meanwhile: that update is not owed.
    if let Err(err) = proto.send_into(update, out) {
        tracing::trace!("update dropped: {err}");
    }
}

impl StreamEndpoint for ServerEndpoint {
    type Event = Command;

    fn handle_connected(&mut self, _now: Instant) {
        // rsrv announces its version as soon as the circuit opens.
        let _ = self.reply(&Command::VersionResponse { version: self.version });
    }

    fn handle_input(&mut self, _now: Instant, data: &[u8]) {
        self.proto.recv(data);
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self, _now: Instant, room: usize, out: &mut BytesMut) {
        let limit = out.len() + room;
        let take = room.min(self.replies.len());
        if take > 0 {
            if take == self.replies.len() && out.is_empty() {
                std::mem::swap(out, &mut self.replies);
            } else {
                out.extend_from_slice(&self.replies.split_to(take));
            }
        }
        if !self.replies.is_empty() || out.len() >= limit {
            return;
        }
        self.outbox.flush_started();
        let mut batch = std::mem::take(&mut self.batch);
        self.outbox.take(limit - out.len(), &mut batch);
        for update in batch.drain(..) {
            encode_update(&mut self.proto, &update, out);
        }
        self.batch = batch;
    }

    fn poll_event(&mut self) -> Option<Command> {
        if self.close.is_some() || !self.wants_input() {
            return None;
        }
        match self.proto.poll_event() {
            Ok(Some(event)) => Some(event.command),
            Ok(None) => None,
            Err(err) => {
                self.close(CloseReason::Protocol(format!("bad input from client: {err}")));
                None
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }

    fn wants_input(&self) -> bool {
        self.replies.len() <= MAX_UNSENT
    }

    fn handle_closed(&mut self, _now: Instant, _reason: &CloseReason) {
        // The subscriptions end with the circuit: no more updates are accepted for them.
        for (id, _) in self.proto.disconnect_released().subscriptions {
            self.outbox.forget(id);
        }
        self.replies.clear();
    }
}

#[cfg(test)]
mod tests {
    //! pvloom's client circuit against this server circuit, in memory on virtual time.

    use std::time::Duration;

    use pvloom_core::harness::StreamPair;

    use super::*;
    use crate::client::endpoint::{ClientCircuit, ClientCircuitConfig, ClientEvent, Payloads};
    use crate::proto::constants::ECA_NORMAL;
    use crate::proto::{DbrData, DbrType, Value};

    struct Tags;
    impl Payloads for Tags {
        type Channel = u32;
        type Read = u32;
        type Write = u32;
        type Sub = u32;
    }

    type Pair = StreamPair<ClientCircuit<Tags>, ServerEndpoint>;

    fn pair(version: u16) -> (Pair, Arc<Outbox>) {
        let outbox = Arc::new(Outbox::new(Box::new(|| {})));
        let config = CircuitConfig { version, ..CircuitConfig::default() };
        let server = ServerEndpoint::new(config, outbox.clone());
        let client = ClientCircuit::new(Instant::now(), ClientCircuitConfig::default());
        (StreamPair::new(client, server), outbox)
    }

    /// Answer what the client asked so far, as the server application would.
    fn serve(pair: &mut Pair, value_bytes: usize) {
        while let Some(request) = pair.server_events.pop_front() {
            let reply = match request {
                Command::CreateChanRequest { cid, .. } => {
                    let rights = Command::AccessRightsResponse { cid, access_rights: AccessRights(3) };
                    pair.server.reply(&rights).unwrap();
                    Command::CreateChanResponse { data_type: DbrType::Char, data_count: 1 << 20, cid, sid: cid }
                }
                Command::ReadNotifyRequest { ioid, data_type, .. } => {
                    let value = DbrData::plain(Value::Char(vec![7; value_bytes]));
                    Command::read_notify_response(ioid, ECA_NORMAL, data_type, &value).unwrap()
                }
                _ => continue,
            };
            pair.server.reply(&reply).unwrap();
        }
        pair.drive();
    }

    #[test]
    fn the_handshake_version_comes_from_the_server_config() {
        let (mut pair, _) = pair(12);
        pair.client.create_channel(1, "WAVE", 1);
        pair.drive();
        serve(&mut pair, 1);
        let version = pair.client_events.iter().find_map(|e| match e {
            ClientEvent::ChannelCreated { version, .. } => Some(*version),
            _ => None,
        });
        assert_eq!(version, Some(12));
        assert_eq!(pair.client.peer_version(), Some(12));
    }

    /// The server endpoint with an application that answers each request as the
    /// driver hands it over (one event, one reply), as `ServerCircuit` does.
    struct Answering {
        inner: ServerEndpoint,
        value_bytes: usize,
    }

    impl StreamEndpoint for Answering {
        type Event = ();
        fn handle_connected(&mut self, now: Instant) {
            self.inner.handle_connected(now);
        }
        fn handle_input(&mut self, now: Instant, data: &[u8]) {
            self.inner.handle_input(now, data);
        }
        fn handle_timeout(&mut self, now: Instant) {
            self.inner.handle_timeout(now);
        }
        fn poll_transmit(&mut self, now: Instant, room: usize, out: &mut BytesMut) {
            self.inner.poll_transmit(now, room, out);
        }
        fn poll_event(&mut self) -> Option<()> {
            let request = self.inner.poll_event()?;
            let reply = match request {
                Command::CreateChanRequest { cid, .. } => {
                    let rights = Command::AccessRightsResponse { cid, access_rights: AccessRights(3) };
                    self.inner.reply(&rights).unwrap();
                    Command::CreateChanResponse { data_type: DbrType::Char, data_count: 1 << 20, cid, sid: cid }
                }
                Command::ReadNotifyRequest { ioid, data_type, .. } => {
                    let value = DbrData::plain(Value::Char(vec![7; self.value_bytes]));
                    Command::read_notify_response(ioid, ECA_NORMAL, data_type, &value).unwrap()
                }
                _ => return Some(()),
            };
            self.inner.reply(&reply).unwrap();
            Some(())
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.inner.poll_timeout()
        }
        fn poll_close(&mut self) -> Option<CloseReason> {
            self.inner.poll_close()
        }
        fn wants_input(&self) -> bool {
            self.inner.wants_input()
        }
    }

    #[test]
    fn a_client_that_reads_no_replies_stops_the_server_reading_requests() {
        let outbox = Arc::new(Outbox::new(Box::new(|| {})));
        let server = Answering { inner: ServerEndpoint::new(CircuitConfig::default(), outbox), value_bytes: 100_000 };
        let client = ClientCircuit::<Tags>::new(Instant::now(), ClientCircuitConfig::default());
        let mut pair = StreamPair::new(client, server);
        pair.client.create_channel(1, "WAVE", 1);
        pair.drive();
        pair.client_events.clear();
        pair.client_reads = false;
        let deadline = pair.now() + Duration::from_secs(60);
        for op in 0..100 {
            pair.client.read(1, DbrType::Char, 0, true, deadline, op);
        }
        pair.drive();
        // Each reply is 100 kB: the server answers until its unsent replies pass
        // MAX_UNSENT (the harness window holds the first 256 kB), then reads nothing.
        assert!(!pair.server.wants_input(), "replies beyond the limit stop request reading");
        let queued = pair.server.inner.replies.len();
        assert!(queued > MAX_UNSENT && queued < MAX_UNSENT + 200_000, "bounded: {queued}");
        pair.client_reads = true;
        pair.drive();
        let done =
            pair.client_events.iter().filter(|e| matches!(e, ClientEvent::ReadDone { result: Ok(_), .. })).count();
        assert_eq!(done, 100, "every request answered once the client reads");
        assert!(pair.server.wants_input());
    }

    #[test]
    fn updates_go_through_the_state_machine() {
        let (mut pair, outbox) = pair(13);
        pair.client.create_channel(1, "WAVE", 1);
        pair.drive();
        serve(&mut pair, 1);
        pair.client.subscribe(1, 9, DbrType::Char, 1, 1, 9);
        pair.drive();
        let Some(Command::EventAddRequest { subscription_id: 9, .. }) = pair.server_events.pop_front() else {
            panic!("the subscription reaches the server");
        };
        let update = |value: u8| {
            let data = DbrData::plain(Value::Char(vec![value]));
            Command::event_add_response(9, ECA_NORMAL, DbrType::Char, &data).unwrap()
        };
        outbox.register(9);
        outbox.push(9, update(1));
        // An update of another type than subscribed is refused by the book, not sent.
        let wrong =
            Command::event_add_response(9, ECA_NORMAL, DbrType::Double, &DbrData::plain(Value::Double(vec![1.0])));
        outbox.register(10);
        outbox.push(10, wrong.unwrap());
        pair.drive();
        let updates: Vec<_> = pair
            .client_events
            .drain(..)
            .filter_map(|e| match e {
                ClientEvent::Update { sub, response } => Some((sub, response.as_f64s())),
                _ => None,
            })
            .collect();
        assert_eq!(updates, vec![(9, Some(vec![1.0]))]);
        assert!(pair.closed().is_none(), "the refused update did not break the circuit");
    }
}
