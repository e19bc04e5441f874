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
    close: Option<CloseReason>,
}

impl ServerEndpoint {
    pub(crate) fn new(config: CircuitConfig, outbox: Arc<Outbox>) -> Self {
        ServerEndpoint {
            proto: Circuit::with_payloads(Role::Server, config),
            version: config.version,
            replies: BytesMut::with_capacity(4096),
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
        let (proto, replies) = (&mut self.proto, &mut self.replies);
        self.outbox.take(|update| {
            encode_update(proto, &update, replies);
            true
        });
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
        let proto = &mut self.proto;
        self.outbox.take(|update| {
            encode_update(proto, &update, out);
            out.len() < limit
        });
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
