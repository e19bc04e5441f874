//! The sans-I/O core of one client circuit: the protocol rules (through
//! [`proto::Circuit`](crate::proto::Circuit)), the handshake, the channels, the
//! operations in flight with their deadlines, the subscriptions and the echo
//! keepalive. The channels, operations and subscriptions live in one table, the
//! protocol circuit's book, with the application's payload stored in every entry
//! and handed back in the events; beside it only an index of the operations'
//! deadlines. It reads no clock and owns no socket:
//! [`pvloom_core::driver`] runs it on TCP, `pvloom_core::harness` on virtual time.

use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use pvloom_core::bytes::BytesMut;
use pvloom_core::endpoint::{CloseReason, StreamEndpoint};

use super::response::Response;
use crate::proto::command::{AccessRights, Command, code};
use crate::proto::constants::{
    CA_MINOR_PROTOCOL_REVISION, CA_V412, CONNECTION_TIMEOUT, ECA_NORMAL, ECHO_TIMEOUT, eca_is_success,
};
use crate::proto::keepalive::{Keepalive, KeepaliveAction};
use crate::proto::state::{BookPayloads, IoKind, Released};
use crate::proto::{Circuit, CircuitConfig, DbrData, DbrType, DecoderConfig, Event, Header, Role};

/// What the application keeps with each entry of the circuit's tables.
pub trait Payloads: 'static {
    /// With a channel (e.g. the PV).
    type Channel: Clone + Send;
    /// With a read in flight (e.g. its result slot).
    type Read: Send;
    /// With a write in flight.
    type Write: Send;
    /// With a subscription.
    type Sub: Clone + Send;
}

/// Settings of a client circuit.
#[derive(Debug, Clone)]
pub struct ClientCircuitConfig {
    /// Minor protocol version announced in VERSION.
    pub version: u16,
    /// Circuit priority (0..=99), announced in VERSION.
    pub priority: u16,
    /// HOST_NAME sent after VERSION.
    pub host_name: String,
    /// CLIENT_NAME (user) sent after VERSION.
    pub client_name: String,
    /// Framing limits for replies.
    pub decoder: DecoderConfig,
    /// Quiet time after which an ECHO is sent (EPICS_CA_CONN_TMO).
    pub echo_after: Duration,
    /// Time for the echo's answer before the server counts as unresponsive.
    pub echo_timeout: Duration,
    /// Unsent request bytes above which new requests fail (the server stopped reading).
    pub max_unsent: usize,
}

impl Default for ClientCircuitConfig {
    fn default() -> Self {
        ClientCircuitConfig {
            version: CA_MINOR_PROTOCOL_REVISION,
            priority: 0,
            host_name: String::new(),
            client_name: String::new(),
            decoder: DecoderConfig::default(),
            echo_after: CONNECTION_TIMEOUT,
            echo_timeout: ECHO_TIMEOUT,
            max_unsent: 64 * 1024 * 1024,
        }
    }
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpFailure {
    /// The server answered with an error status.
    Server {
        /// ECA status.
        status: u32,
        /// The server's message, if it sent one.
        message: Option<String>,
    },
    /// Its deadline passed without a reply.
    TimedOut,
    /// The circuit closed first.
    Disconnected,
    /// The request could not be sent (the reason says why).
    Refused(String),
}

/// What the circuit tells the application.
#[derive(Debug)]
pub enum ClientEvent<P: Payloads> {
    /// Bytes arrived: the server is alive (once per input).
    Heard,
    /// The server's CREATE_CHAN reply: the channel is usable.
    ChannelCreated {
        /// The channel's payload.
        channel: P::Channel,
        /// Its sid on this circuit.
        sid: u32,
        /// Native type.
        native_type: DbrType,
        /// Native element count.
        count: u32,
        /// The minor version in effect.
        version: u16,
    },
    /// ACCESS_RIGHTS for a channel.
    AccessRights {
        /// The channel's payload.
        channel: P::Channel,
        /// The rights now.
        rights: AccessRights,
    },
    /// The server refused or dropped a channel (CREATE_CH_FAIL, SERVER_DISCONN);
    /// its subscriptions on this circuit are gone.
    ChannelLost {
        /// The channel's payload.
        channel: P::Channel,
    },
    /// A CREATE_CHAN could not be sent (e.g. the cid's previous channel is still
    /// being cleared).
    ChannelRefused {
        /// The channel's payload.
        channel: P::Channel,
        /// Why.
        reason: String,
    },
    /// A read finished.
    ReadDone {
        /// Its payload.
        op: P::Read,
        /// The reply, or why there is none.
        result: Result<Response, OpFailure>,
    },
    /// A write finished (a plain WRITE as soon as it was queued).
    WriteDone {
        /// Its payload.
        op: P::Write,
        /// Success, or why not.
        result: Result<(), OpFailure>,
    },
    /// A subscription update.
    Update {
        /// The subscription's payload.
        sub: P::Sub,
        /// The update.
        response: Response,
    },
    /// A name server answered a search made over this circuit.
    SearchReply {
        /// The search id (the searching channel's cid).
        search_id: u32,
        /// The server's address, `None`: the name server's own host.
        address: Option<Ipv4Addr>,
        /// The server's TCP port.
        port: u16,
    },
    /// The server reported an error that belongs to no operation.
    ServerError {
        /// The channel's payload, when the error names one.
        channel: Option<P::Channel>,
        /// ECA status.
        status: u32,
        /// The request it concerns.
        request: u16,
        /// The server's message.
        message: String,
    },
    /// The circuit closed; channel losses and op failures follow.
    Closed(CloseReason),
}

enum OpPayload<P: Payloads> {
    Read(P::Read),
    Write(P::Write),
}

/// An operation in flight, as its book entry carries it.
struct Op<P: Payloads> {
    payload: OpPayload<P>,
    deadline: Instant,
}

/// What the circuit's book carries: the application's payloads, and for each
/// operation its deadline.
struct Tables<P>(PhantomData<P>);

impl<P: Payloads> BookPayloads for Tables<P> {
    type Channel = P::Channel;
    type Io = Op<P>;
    type Sub = P::Sub;
}

/// Where an operation with a deadline is.
enum Timer<P: Payloads> {
    /// In the book, under this kind.
    Booked(IoKind),
    /// Its channel ended, so the book forgot it; it fails at its deadline (or
    /// when the circuit closes), as an operation the server never answered.
    Orphaned(OpPayload<P>),
}

/// One client circuit's sans-I/O core.
pub struct ClientCircuit<P: Payloads> {
    proto: Circuit<Tables<P>>,
    config: ClientCircuitConfig,
    keepalive: Keepalive,
    out: BytesMut,
    events: VecDeque<ClientEvent<P>>,
    /// Every operation in flight by deadline (soonest first) and ioid.
    deadlines: BTreeMap<(Instant, u32), Timer<P>>,
    /// Channels the book forgot on an ERROR reply to their CREATE_CHAN: reported
    /// lost when the circuit closes.
    errored: Vec<P::Channel>,
    next_ioid: u32,
    close: Option<CloseReason>,
    closed: bool,
}

impl<P: Payloads> ClientCircuit<P> {
    /// A circuit whose handshake (VERSION, HOST_NAME, CLIENT_NAME, from `config`)
    /// is queued to go out first.
    pub fn new(now: Instant, config: ClientCircuitConfig) -> Self {
        let proto =
            Circuit::with_payloads(Role::Client, CircuitConfig { decoder: config.decoder, version: config.version });
        let keepalive = Keepalive::with_periods(now, config.echo_after, config.echo_timeout);
        let mut circuit = ClientCircuit {
            proto,
            keepalive,
            out: BytesMut::with_capacity(4096),
            events: VecDeque::new(),
            deadlines: BTreeMap::new(),
            errored: Vec::new(),
            next_ioid: 1,
            close: None,
            closed: false,
            config,
        };
        let handshake = [
            Command::VersionRequest { priority: circuit.config.priority, version: circuit.config.version },
            Command::HostNameRequest { name: circuit.config.host_name.clone() },
            Command::ClientNameRequest { name: circuit.config.client_name.clone() },
        ];
        for command in &handshake {
            if let Err(err) = circuit.queue(command) {
                circuit.close = Some(CloseReason::Local(format!("handshake refused: {err}")));
            }
        }
        circuit
    }

    fn queue(&mut self, command: &Command) -> Result<(), String> {
        self.proto.send_into(command, &mut self.out).map_err(|e| e.to_string())
    }

    fn backed_up(&self) -> Option<OpFailure> {
        if self.closed {
            return Some(OpFailure::Disconnected);
        }
        (self.out.len() > self.config.max_unsent)
            .then(|| OpFailure::Refused("the server is not reading its socket".into()))
    }

    fn next_ioid(&mut self) -> u32 {
        loop {
            let ioid = self.next_ioid;
            self.next_ioid = self.next_ioid.wrapping_add(1).max(1);
            let orphaned =
                || self.deadlines.iter().any(|(&(_, id), timer)| id == ioid && matches!(timer, Timer::Orphaned(_)));
            if !self.proto.book().is_ioid_pending(ioid) && !orphaned() {
                return ioid;
            }
        }
    }

    /// The server's minor version, once its VERSION arrived.
    pub fn peer_version(&self) -> Option<u16> {
        self.proto.book().peer_version()
    }

    /// Request bytes not yet taken by the driver.
    pub fn unsent(&self) -> usize {
        self.out.len()
    }

    /// Operations in flight.
    pub fn ops_in_flight(&self) -> usize {
        self.deadlines.len()
    }

    /// The payload of channel `cid`.
    pub fn channel(&self, cid: u32) -> Option<&P::Channel> {
        self.proto.book().channel_payload(cid)
    }

    /// Ask for channel `name` under `cid`.
    pub fn create_channel(&mut self, cid: u32, name: &str, channel: P::Channel) {
        let request = Command::CreateChanRequest { cid, version: self.config.version, name: name.to_owned() };
        match self.queue(&request) {
            Ok(()) => {
                // The CREATE_CHAN was accepted: the book has the channel.
                let _ = self.proto.book_mut().attach_channel(cid, channel);
            }
            Err(reason) => self.events.push_back(ClientEvent::ChannelRefused { channel, reason }),
        }
    }

    /// Clear channel `cid` (its subscriptions go with it).
    pub fn clear_channel(&mut self, cid: u32) {
        let book = self.proto.book_mut();
        book.take_channel_payload(cid);
        book.take_subscription_payloads_of(cid);
        if let Some(sid) = self.proto.channel(cid).and_then(|c| c.sid) {
            let _ = self.queue(&Command::ClearChannelRequest { sid, cid });
        }
    }

    fn sid(&self, cid: u32) -> Result<u32, OpFailure> {
        self.proto.channel(cid).and_then(|c| c.sid).ok_or(OpFailure::Disconnected)
    }

    /// Keep the operation just sent as `kind` `ioid` until its reply or deadline.
    fn track(&mut self, kind: IoKind, ioid: u32, payload: OpPayload<P>, deadline: Instant) {
        if let Err(op) = self.proto.book_mut().attach_io(kind, ioid, Op { payload, deadline }) {
            // Not outstanding after all (cannot happen for an accepted request).
            return self.finish(op.payload, Err(OpFailure::Refused("not outstanding".into())));
        }
        self.deadlines.insert((deadline, ioid), Timer::Booked(kind));
    }

    /// Read channel `cid`; `count` 0 asks for the current length (4.13 servers,
    /// READ_NOTIFY). The outcome arrives as [`ClientEvent::ReadDone`], at the
    /// latest at `deadline`.
    pub fn read(&mut self, cid: u32, data_type: DbrType, count: u32, notify: bool, deadline: Instant, op: P::Read) {
        if let Some(failure) = self.backed_up() {
            return self.events.push_back(ClientEvent::ReadDone { op, result: Err(failure) });
        }
        let sid = match self.sid(cid) {
            Ok(sid) => sid,
            Err(failure) => return self.events.push_back(ClientEvent::ReadDone { op, result: Err(failure) }),
        };
        let ioid = self.next_ioid();
        // The obsolete READ always names a count; 0 ("all") is READ_NOTIFY's.
        let native_count = self.proto.channel(cid).and_then(|c| c.native_count).unwrap_or(1);
        let (kind, command) = if notify {
            (IoKind::ReadNotify, Command::read_notify_request(sid, ioid, data_type, count))
        } else {
            let count = if count == 0 { native_count.max(1) } else { count };
            (IoKind::Read, Command::ReadRequest { data_type, data_count: count, sid, ioid })
        };
        match self.queue(&command) {
            Ok(()) => self.track(kind, ioid, OpPayload::Read(op), deadline),
            Err(reason) => self.events.push_back(ClientEvent::ReadDone { op, result: Err(OpFailure::Refused(reason)) }),
        }
    }

    /// Write `value` to channel `cid`. With `notify` the server confirms (at the
    /// latest by `deadline`); a plain WRITE is done once queued.
    pub fn write(
        &mut self,
        cid: u32,
        data_type: DbrType,
        value: &DbrData,
        notify: bool,
        deadline: Instant,
        op: P::Write,
    ) {
        if let Some(failure) = self.backed_up() {
            return self.events.push_back(ClientEvent::WriteDone { op, result: Err(failure) });
        }
        let sid = match self.sid(cid) {
            Ok(sid) => sid,
            Err(failure) => return self.events.push_back(ClientEvent::WriteDone { op, result: Err(failure) }),
        };
        let ioid = self.next_ioid();
        let command = if notify {
            Command::write_notify_request(sid, ioid, data_type, value)
        } else {
            Command::write_request(sid, ioid, data_type, value)
        };
        let queued = command.map_err(|e| e.to_string()).and_then(|command| self.queue(&command));
        match queued {
            Ok(()) if notify => self.track(IoKind::WriteNotify, ioid, OpPayload::Write(op), deadline),
            Ok(()) => self.events.push_back(ClientEvent::WriteDone { op, result: Ok(()) }),
            Err(reason) => {
                self.events.push_back(ClientEvent::WriteDone { op, result: Err(OpFailure::Refused(reason)) });
            }
        }
    }

    /// Subscribe channel `cid` under `wire` (fresh for every EVENT_ADD, so an id
    /// whose cancel is unconfirmed is never confused with a new subscription).
    /// Returns false when it could not be sent.
    pub fn subscribe(&mut self, cid: u32, wire: u32, data_type: DbrType, count: u32, mask: u16, sub: P::Sub) -> bool {
        let Ok(sid) = self.sid(cid) else { return false };
        if self.queue(&Command::event_add_request(sid, wire, data_type, count, mask)).is_err() {
            return false;
        }
        // The EVENT_ADD was accepted: the book has the subscription.
        let _ = self.proto.book_mut().attach_subscription(wire, sub);
        true
    }

    /// True if `wire` is a live subscription here.
    pub fn has_subscription(&self, wire: u32) -> bool {
        self.proto.book().subscription_payload(wire).is_some()
    }

    /// Cancel subscription `wire`; updates still on their way are absorbed.
    pub fn unsubscribe(&mut self, wire: u32) {
        let Some(cid) = self.proto.book().subscription(wire).map(|s| s.cid) else { return };
        if self.proto.book_mut().take_subscription_payload(wire).is_none() {
            return;
        }
        let Ok(sid) = self.sid(cid) else { return };
        let Some((data_type, data_count)) = self.proto.subscription(wire).map(|s| (s.data_type, s.data_count)) else {
            return;
        };
        let _ = self.queue(&Command::EventCancelRequest { data_type, data_count, sid, subscription_id: wire });
    }

    /// Search names over this circuit (a name server's). Ignored until the server
    /// announced 4.12 or later, which SEARCH over TCP needs.
    pub fn search(&mut self, items: &[(u32, String)]) {
        if self.peer_version().is_none_or(|v| v < CA_V412) {
            return;
        }
        for (cid, name) in items {
            let request = Command::SearchRequest {
                name: name.clone(),
                do_reply: false,
                version: self.config.version,
                search_id: *cid,
            };
            let _ = self.queue(&request);
        }
    }

    /// EVENTS_ON (true) or EVENTS_OFF (false).
    pub fn set_events(&mut self, on: bool) {
        let _ = self.queue(if on { &Command::EventsOnRequest } else { &Command::EventsOffRequest });
    }

    /// Close the circuit (the driver closes the connection).
    pub fn close(&mut self, reason: CloseReason) {
        self.close.get_or_insert(reason);
    }

    fn expire(&mut self, now: Instant) {
        while let Some(entry) = self.deadlines.first_entry() {
            let &(deadline, ioid) = entry.key();
            if deadline > now {
                break;
            }
            // A booked one stays outstanding in the book: its late reply is ignored.
            let payload = match entry.remove() {
                Timer::Booked(kind) => self.proto.book_mut().take_io_payload(kind, ioid).map(|op| op.payload),
                Timer::Orphaned(payload) => Some(payload),
            };
            if let Some(payload) = payload {
                self.finish(payload, Err(OpFailure::TimedOut));
            }
        }
    }

    /// The operation a reply completed (released from the book), out of the index.
    fn completed(&mut self, ios: Vec<(IoKind, u32, Op<P>)>) -> Option<OpPayload<P>> {
        let (_, ioid, op) = ios.into_iter().next()?;
        self.deadlines.remove(&(op.deadline, ioid));
        Some(op.payload)
    }

    /// Operations the book forgot with their channel wait for their deadline.
    fn orphan(&mut self, ios: Vec<(IoKind, u32, Op<P>)>) {
        for (_, ioid, op) in ios {
            self.deadlines.insert((op.deadline, ioid), Timer::Orphaned(op.payload));
        }
    }

    fn finish(&mut self, payload: OpPayload<P>, result: Result<Option<Response>, OpFailure>) {
        let event = match payload {
            OpPayload::Read(op) => ClientEvent::ReadDone {
                op,
                result: result.and_then(|r| r.ok_or_else(|| OpFailure::Refused("a write reply to a read".into()))),
            },
            OpPayload::Write(op) => ClientEvent::WriteDone { op, result: result.map(|_| ()) },
        };
        self.events.push_back(event);
    }

    fn decoded(&mut self, data_type: DbrType, data_count: u32, status: u32, payload: &[u8]) -> Option<Response> {
        match DbrData::decode(data_type, data_count, payload) {
            Ok(data) => Some(Response { data_type, data_count, status, data }),
            Err(err) => {
                self.close(CloseReason::Protocol(format!("malformed reply: {err}")));
                None
            }
        }
    }

    fn handle(&mut self, event: Event<Tables<P>>) {
        // Ended subscriptions need no word: their updates stop.
        let Released { channels, ios, subscriptions: _ } = event.released;
        match event.command {
            Command::CreateChanResponse { data_type, data_count, cid, sid } => {
                if let Some(channel) = self.proto.book().channel_payload(cid) {
                    let version = self.proto.protocol_version();
                    self.events.push_back(ClientEvent::ChannelCreated {
                        channel: channel.clone(),
                        sid,
                        native_type: data_type,
                        count: data_count,
                        version,
                    });
                }
            }
            Command::AccessRightsResponse { cid, access_rights } => {
                if let Some(channel) = self.proto.book().channel_payload(cid) {
                    let channel = channel.clone();
                    self.events.push_back(ClientEvent::AccessRights { channel, rights: access_rights });
                }
            }
            Command::CreateChFailResponse { .. } | Command::ServerDisconnResponse { .. } => {
                for (info, channel) in channels {
                    tracing::info!(pv = info.name, "server dropped the channel");
                    self.events.push_back(ClientEvent::ChannelLost { channel });
                }
                self.orphan(ios);
            }
            Command::ReadNotifyResponse { data_type, data_count, status, data, .. } => {
                let Some(op) = self.completed(ios) else { return };
                if !eca_is_success(status) {
                    return self.finish(op, Err(OpFailure::Server { status, message: None }));
                }
                let response = self.decoded(data_type, data_count, status, &data);
                self.finish(op, response.map(Some).ok_or(OpFailure::Disconnected));
            }
            // The obsolete READ reply carries the cid where READ_NOTIFY has a status:
            // it only ever reports success.
            Command::ReadResponse { data_type, data_count, data, .. } => {
                let Some(op) = self.completed(ios) else { return };
                let response = self.decoded(data_type, data_count, ECA_NORMAL, &data);
                self.finish(op, response.map(Some).ok_or(OpFailure::Disconnected));
            }
            Command::WriteNotifyResponse { status, .. } => {
                let Some(op) = self.completed(ios) else { return };
                let result =
                    if eca_is_success(status) { Ok(None) } else { Err(OpFailure::Server { status, message: None }) };
                self.finish(op, result);
            }
            Command::EventAddResponse { data_type, data_count, status, subscription_id, data } => {
                let Some(sub) = self.proto.book().subscription_payload(subscription_id) else { return };
                let sub = sub.clone();
                if let Some(response) = self.decoded(data_type, data_count, status, &data) {
                    self.events.push_back(ClientEvent::Update { sub, response });
                }
            }
            Command::ErrorResponse { cid, status, original_request, message } => {
                self.handle_error(cid, status, original_request, message, channels, ios);
            }
            Command::SearchResponse { port, server_address, search_id, .. } => {
                self.events.push_back(ClientEvent::SearchReply { search_id, address: server_address, port });
            }
            // A cleared channel's payloads were taken by `clear_channel`; what was
            // still outstanding on it waits for its deadline.
            Command::ClearChannelResponse { .. } => self.orphan(ios),
            Command::VersionResponse { .. }
            | Command::NotFoundResponse { .. }
            | Command::EchoResponse
            | Command::EventCancelResponse { .. } => {}
            other => tracing::debug!(command = other.name(), "ignored on a client circuit"),
        }
    }

    fn handle_error(
        &mut self,
        cid: u32,
        status: u32,
        request: Header,
        message: String,
        channels: Vec<(crate::proto::state::Channel, P::Channel)>,
        ios: Vec<(IoKind, u32, Op<P>)>,
    ) {
        let detail = (!message.is_empty()).then(|| message.clone());
        match request.command {
            code::READ_NOTIFY | code::READ | code::WRITE_NOTIFY => {
                if let Some(op) = self.completed(ios) {
                    self.finish(op, Err(OpFailure::Server { status, message: detail }));
                }
            }
            _ => {
                // A failed CREATE_CHAN ends the channel in the book; it is reported
                // lost when the circuit closes.
                let channel =
                    self.proto.book().channel_payload(cid).cloned().or_else(|| {
                        channels.iter().find(|(info, _)| info.cid == cid).map(|(_, channel)| channel.clone())
                    });
                self.errored.extend(channels.into_iter().map(|(_, channel)| channel));
                self.orphan(ios);
                self.events.push_back(ClientEvent::ServerError { channel, status, request: request.command, message });
            }
        }
    }
}

impl<P: Payloads> StreamEndpoint for ClientCircuit<P>
where
    P::Read: 'static,
    P::Write: 'static,
{
    type Event = ClientEvent<P>;

    fn handle_connected(&mut self, now: Instant) {
        self.keepalive.heard(now);
    }

    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.keepalive.heard(now);
        self.events.push_back(ClientEvent::Heard);
        self.proto.recv(data);
        loop {
            if self.close.is_some() {
                return;
            }
            match self.proto.poll_event() {
                Ok(Some(event)) => self.handle(event),
                Ok(None) => return,
                Err(err) => {
                    self.close(CloseReason::Protocol(format!("from server: {err}")));
                    return;
                }
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
        match self.keepalive.poll(now) {
            KeepaliveAction::WaitUntil(_) => {}
            KeepaliveAction::SendEcho => {
                self.keepalive.echo_sent(now);
                let _ = self.queue(&Command::EchoRequest);
            }
            KeepaliveAction::Unresponsive => {
                self.close(CloseReason::TimedOut("server unresponsive: no echo reply".into()))
            }
        }
    }

    fn poll_transmit(&mut self, _now: Instant, room: usize, out: &mut BytesMut) {
        let take = room.min(self.out.len());
        if take == self.out.len() && out.is_empty() {
            std::mem::swap(out, &mut self.out);
        } else {
            out.extend_from_slice(&self.out.split_to(take));
        }
    }

    fn poll_event(&mut self) -> Option<ClientEvent<P>> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let keepalive = self.keepalive.next_deadline();
        match self.deadlines.first_key_value() {
            Some((&(op, _), _)) => Some(op.min(keepalive)),
            None => Some(keepalive),
        }
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }

    fn handle_closed(&mut self, _now: Instant, reason: &CloseReason) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let released = self.proto.disconnect_released();
        self.events.push_back(ClientEvent::Closed(reason.clone()));
        let orphans = std::mem::take(&mut self.deadlines).into_values().filter_map(|timer| match timer {
            Timer::Booked(_) => None,
            Timer::Orphaned(payload) => Some(payload),
        });
        let ops: Vec<OpPayload<P>> = released.ios.into_iter().map(|(_, _, op)| op.payload).chain(orphans).collect();
        for op in ops {
            self.finish(op, Err(OpFailure::Disconnected));
        }
        let errored = std::mem::take(&mut self.errored);
        for channel in released.channels.into_iter().map(|(_, channel)| channel).chain(errored) {
            self.events.push_back(ClientEvent::ChannelLost { channel });
        }
        self.out.clear();
    }
}
