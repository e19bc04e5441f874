//! Protocol rules for one virtual circuit: circuit and channel states,
//! outstanding I/O ids and subscriptions.
//!
//! [`CircuitBook`] is pure bookkeeping: it judges a command sent or received
//! by either side and records its effect. Every rule checks first and mutates
//! after, so a refused command leaves the book unchanged.
//!
//! The book is also the one table of its owner: each channel, outstanding I/O
//! and subscription can carry an application payload ([`BookPayloads`]),
//! attached after the command that created the entry and handed back
//! ([`Released`]) when a command or the disconnection ends the entry. With the
//! default `()` payloads nothing is ever attached.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use crate::proto::command::{AccessRights, Command, Role, code};
use crate::proto::constants::{CA_MINIMUM_SUPPORTED_VERSION, CA_MINOR_PROTOCOL_REVISION, CA_V412};
use crate::proto::dbr::DbrType;
use crate::proto::error::StateError;

/// Handshake progress of a circuit, seen from this endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// We have not sent VERSION yet; nothing else may be sent.
    SendVersion,
    /// We sent VERSION; the peer's has not arrived.
    AwaitVersion,
    /// Both sides sent VERSION.
    Connected,
    /// The circuit was disconnected or lost framing.
    Closed,
}

/// Life cycle of a channel on a circuit. A channel not yet requested (caproto's
/// SEND_CREATE_CHAN_REQUEST) is simply absent from the circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelState {
    /// CREATE_CHAN was requested and not yet answered.
    AwaitCreateChanResponse,
    /// The server answered with a sid: operations are allowed.
    Connected,
    /// The client asked to clear the channel; only replies may still flow.
    MustClose,
    /// Cleared or dropped by the server (the channel is forgotten).
    Closed,
    /// Creation failed (the channel is forgotten).
    Failed,
}

/// What the circuit knows about one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Client-chosen id.
    pub cid: u32,
    /// PV name from CREATE_CHAN.
    pub name: String,
    /// Current state.
    pub state: ChannelState,
    /// Server-chosen id, once connected.
    pub sid: Option<u32>,
    /// Native type reported by the server, once connected.
    pub native_type: Option<DbrType>,
    /// Native element count reported by the server, once connected.
    pub native_count: Option<u32>,
    /// Latest rights from ACCESS_RIGHTS.
    pub access_rights: AccessRights,
}

/// Which request an I/O id belongs to; ids are unique per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoKind {
    /// CA_PROTO_READ.
    Read,
    /// CA_PROTO_READ_NOTIFY.
    ReadNotify,
    /// CA_PROTO_WRITE_NOTIFY.
    WriteNotify,
}

impl IoKind {
    fn of_code(command: u16) -> Option<IoKind> {
        match command {
            code::READ => Some(IoKind::Read),
            code::READ_NOTIFY => Some(IoKind::ReadNotify),
            code::WRITE_NOTIFY => Some(IoKind::WriteNotify),
            _ => None,
        }
    }
}

/// An outstanding get or put-with-notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingIo {
    /// Channel it was issued on.
    pub cid: u32,
    /// Requested type.
    pub data_type: DbrType,
    /// Requested count.
    pub data_count: u32,
}

/// An active subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// Channel it was created on.
    pub cid: u32,
    /// That channel's sid.
    pub sid: u32,
    /// Type of the updates.
    pub data_type: DbrType,
    /// Requested count (0: all available).
    pub data_count: u32,
    /// Event mask.
    pub mask: u16,
    /// EVENT_CANCEL was sent; the next empty update confirms it.
    pub cancel_pending: bool,
}

/// What the owner of a circuit keeps with each entry of its book.
///
/// `()` carries nothing (the default of [`CircuitBook`] and
/// [`Circuit`](crate::proto::Circuit)).
pub trait BookPayloads {
    /// Kept with a channel.
    type Channel;
    /// Kept with an outstanding READ, READ_NOTIFY or WRITE_NOTIFY.
    type Io;
    /// Kept with a subscription.
    type Sub;
}

impl BookPayloads for () {
    type Channel = ();
    type Io = ();
    type Sub = ();
}

/// The payloads a command (or the disconnection) took out of the book with the
/// entries it ended; entries without a payload are not listed.
pub struct Released<P: BookPayloads = ()> {
    /// Channels that ended, as they were last.
    pub channels: Vec<(Channel, P::Channel)>,
    /// I/O that completed, failed or ended with its channel: kind, ioid, payload.
    pub ios: Vec<(IoKind, u32, P::Io)>,
    /// Subscriptions that ended (cancelled, failed, or with their channel), by id.
    pub subscriptions: Vec<(u32, P::Sub)>,
}

impl<P: BookPayloads> Released<P> {
    /// True when no payload was released.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.ios.is_empty() && self.subscriptions.is_empty()
    }
}

impl<P: BookPayloads> Default for Released<P> {
    fn default() -> Self {
        Released { channels: Vec::new(), ios: Vec::new(), subscriptions: Vec::new() }
    }
}

impl<P: BookPayloads> Clone for Released<P>
where
    P::Channel: Clone,
    P::Io: Clone,
    P::Sub: Clone,
{
    fn clone(&self) -> Self {
        Released { channels: self.channels.clone(), ios: self.ios.clone(), subscriptions: self.subscriptions.clone() }
    }
}

impl<P: BookPayloads> PartialEq for Released<P>
where
    P::Channel: PartialEq,
    P::Io: PartialEq,
    P::Sub: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.channels == other.channels && self.ios == other.ios && self.subscriptions == other.subscriptions
    }
}

impl<P: BookPayloads> std::fmt::Debug for Released<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Released")
            .field("channels", &self.channels.iter().map(|(channel, _)| channel.cid).collect::<Vec<_>>())
            .field("ios", &self.ios.iter().map(|(kind, ioid, _)| (kind, ioid)).collect::<Vec<_>>())
            .field("subscriptions", &self.subscriptions.iter().map(|(id, _)| id).collect::<Vec<_>>())
            .finish()
    }
}

/// A book entry: what the protocol knows, and the owner's payload.
struct Entry<T, X> {
    info: T,
    payload: Option<X>,
}

impl<T, X> Entry<T, X> {
    fn new(info: T) -> Self {
        Entry { info, payload: None }
    }
}

impl<T: Clone, X: Clone> Clone for Entry<T, X> {
    fn clone(&self) -> Self {
        Entry { info: self.info.clone(), payload: self.payload.clone() }
    }
}

impl<T: std::fmt::Debug, X> std::fmt::Debug for Entry<T, X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("info", &self.info).field("payload", &self.payload.is_some()).finish()
    }
}

/// Whether a command crossed the circuit from us or to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Sent,
    Received,
}

/// How a judged command should be reported.
pub(crate) enum Verdict<P: BookPayloads> {
    /// Report it (`rewritten`: as another command — an empty update that is not a
    /// cancel confirmation becomes an `EventAddResponse` with no elements), with
    /// the payloads of the entries it ended. The judged command itself is not
    /// copied: the caller owns it.
    Deliver { rewritten: Option<Command>, cid: Option<u32>, channel_state: Option<ChannelState>, released: Released<P> },
    /// A late cancel confirmation for a subscription that died with its
    /// channel (RSRV sends these); consume it silently.
    Absorb,
}

/// Subscriptions whose channel closed while they were active. Bounded so a
/// peer cannot make it grow without limit.
const MAX_RETIRED_SUBSCRIPTIONS: usize = 4096;

/// The hasher of the book's tables: every update and reply is looked up here, and the
/// peer picks the ids, so it is fast but seeded per table (SipHash costs a fifth of a
/// server's work per update; an unseeded hash would let a peer pick colliding ids).
type Ids = foldhash::fast::RandomState;

/// The rules engine behind [`Circuit`](crate::proto::Circuit), and the table
/// of its channels, outstanding I/O and subscriptions with their payloads.
pub struct CircuitBook<P: BookPayloads = ()> {
    role: Role,
    our_version: u16,
    sent_version: bool,
    peer_version: Option<u16>,
    received_any: bool,
    priority: Option<u16>,
    closed: bool,
    channels: HashMap<u32, Entry<Channel, P::Channel>, Ids>,
    cid_by_sid: HashMap<u32, u32, Ids>,
    ios: HashMap<(IoKind, u32), Entry<PendingIo, P::Io>, Ids>,
    subscriptions: HashMap<u32, Entry<Subscription, P::Sub>, Ids>,
    retired_subscriptions: HashSet<u32, Ids>,
    /// Subscriptions whose cancel was confirmed: updates a server had already queued
    /// may still arrive for them (libca ignores those; so do we). Bounded.
    ended_subscriptions: HashSet<u32, Ids>,
    /// Payloads of a circuit that failed while reading (a framing error), kept
    /// for [`disconnect_released`](Self::disconnect_released).
    failed: Released<P>,
}

impl<P: BookPayloads> std::fmt::Debug for CircuitBook<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBook")
            .field("role", &self.role)
            .field("our_version", &self.our_version)
            .field("sent_version", &self.sent_version)
            .field("peer_version", &self.peer_version)
            .field("received_any", &self.received_any)
            .field("priority", &self.priority)
            .field("closed", &self.closed)
            .field("channels", &self.channels)
            .field("cid_by_sid", &self.cid_by_sid)
            .field("ios", &self.ios)
            .field("subscriptions", &self.subscriptions)
            .field("retired_subscriptions", &self.retired_subscriptions)
            .field("ended_subscriptions", &self.ended_subscriptions)
            .field("failed", &self.failed)
            .finish()
    }
}

impl<P: BookPayloads> Clone for CircuitBook<P>
where
    P::Channel: Clone,
    P::Io: Clone,
    P::Sub: Clone,
{
    fn clone(&self) -> Self {
        CircuitBook {
            role: self.role,
            our_version: self.our_version,
            sent_version: self.sent_version,
            peer_version: self.peer_version,
            received_any: self.received_any,
            priority: self.priority,
            closed: self.closed,
            channels: self.channels.clone(),
            cid_by_sid: self.cid_by_sid.clone(),
            ios: self.ios.clone(),
            subscriptions: self.subscriptions.clone(),
            retired_subscriptions: self.retired_subscriptions.clone(),
            ended_subscriptions: self.ended_subscriptions.clone(),
            failed: self.failed.clone(),
        }
    }
}

impl CircuitBook {
    /// An empty circuit for `role`, announcing minor version `our_version`,
    /// carrying no payloads.
    pub fn new(role: Role, our_version: u16) -> Self {
        Self::with_payloads(role, our_version)
    }
}

impl<P: BookPayloads> CircuitBook<P> {
    /// An empty circuit for `role`, announcing minor version `our_version`,
    /// whose entries can carry payloads `P`.
    pub fn with_payloads(role: Role, our_version: u16) -> Self {
        CircuitBook {
            role,
            our_version,
            sent_version: false,
            peer_version: None,
            received_any: false,
            priority: None,
            closed: false,
            channels: HashMap::default(),
            cid_by_sid: HashMap::default(),
            ios: HashMap::default(),
            subscriptions: HashMap::default(),
            retired_subscriptions: HashSet::default(),
            ended_subscriptions: HashSet::default(),
            failed: Released::default(),
        }
    }

    /// Our side of the protocol.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Handshake state.
    pub fn state(&self) -> CircuitState {
        if self.closed {
            CircuitState::Closed
        } else if !self.sent_version {
            CircuitState::SendVersion
        } else if self.peer_version.is_none() {
            CircuitState::AwaitVersion
        } else {
            CircuitState::Connected
        }
    }

    /// Minor version the peer announced.
    pub fn peer_version(&self) -> Option<u16> {
        self.peer_version
    }

    /// Minor version in effect: the lower of both sides once the peer's is known.
    pub fn protocol_version(&self) -> u16 {
        self.peer_version.map_or(self.our_version, |peer| peer.min(self.our_version))
    }

    /// Priority from the client's VERSION.
    pub fn priority(&self) -> Option<u16> {
        self.priority
    }

    /// A channel by client id.
    pub fn channel(&self, cid: u32) -> Option<&Channel> {
        self.channels.get(&cid).map(|entry| &entry.info)
    }

    /// A channel by server id.
    pub fn channel_by_sid(&self, sid: u32) -> Option<&Channel> {
        self.cid_by_sid.get(&sid).and_then(|cid| self.channel(*cid))
    }

    /// All live channels.
    pub fn channels(&self) -> impl Iterator<Item = &Channel> {
        self.channels.values().map(|entry| &entry.info)
    }

    /// Number of live channels (in any state).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The live channels that carry a payload, with it.
    pub fn channel_payloads(&self) -> impl Iterator<Item = (&Channel, &P::Channel)> {
        self.channels.values().filter_map(|entry| Some((&entry.info, entry.payload.as_ref()?)))
    }

    /// The payload of channel `cid`.
    pub fn channel_payload(&self, cid: u32) -> Option<&P::Channel> {
        self.channels.get(&cid)?.payload.as_ref()
    }

    /// The payload of channel `cid`, to change.
    pub fn channel_payload_mut(&mut self, cid: u32) -> Option<&mut P::Channel> {
        self.channels.get_mut(&cid)?.payload.as_mut()
    }

    /// The channel with server id `sid` and its payload, if it carries one.
    pub fn channel_payload_by_sid(&self, sid: u32) -> Option<(&Channel, &P::Channel)> {
        let entry = self.channels.get(self.cid_by_sid.get(&sid)?)?;
        Some((&entry.info, entry.payload.as_ref()?))
    }

    /// Attaches `payload` to channel `cid` (replacing any); handed back when
    /// there is no such channel.
    pub fn attach_channel(&mut self, cid: u32, payload: P::Channel) -> Result<(), P::Channel> {
        match self.channels.get_mut(&cid) {
            Some(entry) => {
                entry.payload = Some(payload);
                Ok(())
            }
            None => Err(payload),
        }
    }

    /// Takes channel `cid`'s payload; the channel itself stays as it is.
    pub fn take_channel_payload(&mut self, cid: u32) -> Option<P::Channel> {
        self.channels.get_mut(&cid)?.payload.take()
    }

    /// An outstanding get/put by kind and id.
    pub fn pending_io(&self, kind: IoKind, ioid: u32) -> Option<&PendingIo> {
        self.ios.get(&(kind, ioid)).map(|entry| &entry.info)
    }

    /// True if `ioid` is outstanding as any kind of I/O.
    pub fn is_ioid_pending(&self, ioid: u32) -> bool {
        [IoKind::Read, IoKind::ReadNotify, IoKind::WriteNotify].iter().any(|kind| self.ios.contains_key(&(*kind, ioid)))
    }

    /// The payload of an outstanding get/put.
    pub fn io_payload(&self, kind: IoKind, ioid: u32) -> Option<&P::Io> {
        self.ios.get(&(kind, ioid))?.payload.as_ref()
    }

    /// Attaches `payload` to an outstanding get/put (replacing any); handed
    /// back when there is no such I/O.
    pub fn attach_io(&mut self, kind: IoKind, ioid: u32, payload: P::Io) -> Result<(), P::Io> {
        match self.ios.get_mut(&(kind, ioid)) {
            Some(entry) => {
                entry.payload = Some(payload);
                Ok(())
            }
            None => Err(payload),
        }
    }

    /// Takes an outstanding get/put's payload; the I/O stays outstanding (its
    /// reply is still accepted, and released with no payload).
    pub fn take_io_payload(&mut self, kind: IoKind, ioid: u32) -> Option<P::Io> {
        self.ios.get_mut(&(kind, ioid))?.payload.take()
    }

    /// Number of outstanding gets/puts.
    pub fn pending_io_count(&self) -> usize {
        self.ios.len()
    }

    /// A subscription by id.
    pub fn subscription(&self, subscription_id: u32) -> Option<&Subscription> {
        self.subscriptions.get(&subscription_id).map(|entry| &entry.info)
    }

    /// The payload of a subscription.
    pub fn subscription_payload(&self, subscription_id: u32) -> Option<&P::Sub> {
        self.subscriptions.get(&subscription_id)?.payload.as_ref()
    }

    /// The subscriptions that carry a payload, by id.
    pub fn subscription_payloads(&self) -> impl Iterator<Item = (u32, &P::Sub)> {
        self.subscriptions.iter().filter_map(|(id, entry)| Some((*id, entry.payload.as_ref()?)))
    }

    /// Attaches `payload` to a subscription (replacing any); handed back when
    /// there is no such subscription.
    pub fn attach_subscription(&mut self, subscription_id: u32, payload: P::Sub) -> Result<(), P::Sub> {
        match self.subscriptions.get_mut(&subscription_id) {
            Some(entry) => {
                entry.payload = Some(payload);
                Ok(())
            }
            None => Err(payload),
        }
    }

    /// Takes a subscription's payload; the subscription stays as it is.
    pub fn take_subscription_payload(&mut self, subscription_id: u32) -> Option<P::Sub> {
        self.subscriptions.get_mut(&subscription_id)?.payload.take()
    }

    /// Takes the payloads of channel `cid`'s subscriptions, by id.
    pub fn take_subscription_payloads_of(&mut self, cid: u32) -> Vec<(u32, P::Sub)> {
        self.subscriptions
            .iter_mut()
            .filter(|(_, entry)| entry.info.cid == cid)
            .filter_map(|(id, entry)| Some((*id, entry.payload.take()?)))
            .collect()
    }

    /// Number of active subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// Marks the circuit closed; returns the cids of the channels it held,
    /// all of which are now [`ChannelState::Closed`]. Payloads are dropped.
    pub fn disconnect(&mut self) -> Vec<u32> {
        self.failed = Released::default();
        self.drain(&mut Released::default())
    }

    /// Marks the circuit closed and hands back every payload it still held
    /// (also those of a circuit that already failed on a framing error).
    pub fn disconnect_released(&mut self) -> Released<P> {
        let mut released = std::mem::take(&mut self.failed);
        self.drain(&mut released);
        released
    }

    /// Closes the circuit after a framing error, keeping the payloads for
    /// [`disconnect_released`](Self::disconnect_released).
    pub(crate) fn fail(&mut self) {
        let mut released = std::mem::take(&mut self.failed);
        self.drain(&mut released);
        self.failed = released;
    }

    fn drain(&mut self, released: &mut Released<P>) -> Vec<u32> {
        self.closed = true;
        self.cid_by_sid.clear();
        released.ios.extend(self.ios.drain().filter_map(|((kind, ioid), entry)| Some((kind, ioid, entry.payload?))));
        released.subscriptions.extend(self.subscriptions.drain().filter_map(|(id, entry)| Some((id, entry.payload?))));
        self.retired_subscriptions.clear();
        let mut cids = Vec::with_capacity(self.channels.len());
        for (cid, entry) in self.channels.drain() {
            cids.push(cid);
            if let Some(payload) = entry.payload {
                released.channels.push((entry.info, payload));
            }
        }
        cids.sort_unstable();
        cids
    }

    /// Judges `command` crossing the circuit in `direction` and records its effect.
    pub(crate) fn apply(&mut self, command: &Command, direction: Direction) -> Result<Verdict<P>, StateError> {
        if self.closed {
            return Err(StateError::CircuitClosed);
        }
        let sender = match direction {
            Direction::Sent => self.role,
            Direction::Received => self.role.peer(),
        };
        match command.sender() {
            Some(role) if role != sender => {
                return Err(StateError::WrongSender { command: command.name(), role: sender });
            }
            None if !matches!(command, Command::Obsolete { .. }) => {
                return Err(StateError::NotACircuitCommand { command: command.name() });
            }
            None if direction == Direction::Sent => {
                return Err(StateError::NotACircuitCommand { command: command.name() });
            }
            _ => {}
        }
        let is_version = matches!(command, Command::VersionRequest { .. } | Command::VersionResponse { .. });
        let sender_opened = match direction {
            Direction::Sent => self.sent_version,
            Direction::Received => self.received_any,
        };
        if !is_version && !sender_opened {
            return Err(StateError::VersionNotFirst { command: command.name() });
        }
        let verdict = self.apply_rules(command, direction)?;
        if direction == Direction::Received {
            self.received_any = true;
        }
        Ok(verdict)
    }

    fn apply_rules(&mut self, command: &Command, direction: Direction) -> Result<Verdict<P>, StateError> {
        let mut released = Released::default();
        let mut verdict = self.judge(command, direction, &mut released)?;
        if let Verdict::Deliver { released: slot, .. } = &mut verdict {
            *slot = released;
        }
        Ok(verdict)
    }

    /// The rules proper; payloads of the entries a command ends go to `released`.
    fn judge(
        &mut self,
        command: &Command,
        direction: Direction,
        released: &mut Released<P>,
    ) -> Result<Verdict<P>, StateError> {
        use Command::*;
        let deliver = |cid: Option<u32>, channel_state: Option<ChannelState>| Verdict::Deliver {
            rewritten: None,
            cid,
            channel_state,
            released: Released::default(),
        };
        Ok(match command {
            VersionRequest { priority, version } => {
                self.note_version(*version, direction);
                self.priority = Some(*priority);
                deliver(None, None)
            }
            VersionResponse { version } => {
                // 0 is the no-op VERSION of pre-4.11 servers; 1..=3 are protocols
                // nobody has spoken since the 1990s and whose layouts differ.
                if direction == Direction::Received && *version != 0 && *version < CA_MINIMUM_SUPPORTED_VERSION {
                    return Err(StateError::UnsupportedVersion { version: *version });
                }
                self.note_version(*version, direction);
                deliver(None, None)
            }
            SearchRequest { .. } => {
                if self.role == Role::Client
                    && direction == Direction::Sent
                    && self.peer_version.is_none_or(|v| v < CA_V412)
                {
                    return Err(StateError::TcpSearchUnsupported { peer_version: self.peer_version });
                }
                deliver(None, None)
            }
            ErrorResponse { cid, original_request, .. } => {
                let channel = self.settle_failed_request(original_request, released);
                let cid = channel.or_else(|| self.channels.contains_key(cid).then_some(*cid));
                // A channel the error removed can only be a failed creation.
                let state =
                    cid.map(|cid| self.channels.get(&cid).map_or(ChannelState::Failed, |entry| entry.info.state));
                deliver(cid, state)
            }
            CreateChanRequest { cid, name, .. } => {
                if self.channels.contains_key(cid) {
                    return Err(StateError::DuplicateCid(*cid));
                }
                self.channels.insert(
                    *cid,
                    Entry::new(Channel {
                        cid: *cid,
                        name: name.clone(),
                        state: ChannelState::AwaitCreateChanResponse,
                        sid: None,
                        native_type: None,
                        native_count: None,
                        access_rights: AccessRights::NONE,
                    }),
                );
                deliver(Some(*cid), Some(ChannelState::AwaitCreateChanResponse))
            }
            CreateChanResponse { data_type, data_count, cid, sid } => {
                self.expect_state(command, *cid, &[ChannelState::AwaitCreateChanResponse])?;
                if self.cid_by_sid.contains_key(sid) {
                    return Err(StateError::DuplicateSid(*sid));
                }
                self.cid_by_sid.insert(*sid, *cid);
                let channel = self.channel_mut(*cid)?;
                channel.state = ChannelState::Connected;
                channel.sid = Some(*sid);
                channel.native_type = Some(*data_type);
                channel.native_count = Some(*data_count);
                deliver(Some(*cid), Some(ChannelState::Connected))
            }
            AccessRightsResponse { cid, access_rights } => {
                let state = self.expect_state(
                    command,
                    *cid,
                    &[ChannelState::AwaitCreateChanResponse, ChannelState::Connected, ChannelState::MustClose],
                )?;
                self.channel_mut(*cid)?.access_rights = *access_rights;
                deliver(Some(*cid), Some(state))
            }
            CreateChFailResponse { cid } => {
                self.expect_state(command, *cid, &[ChannelState::AwaitCreateChanResponse])?;
                self.forget_channel(*cid, released);
                deliver(Some(*cid), Some(ChannelState::Failed))
            }
            ServerDisconnResponse { cid } => {
                self.expect_state(
                    command,
                    *cid,
                    &[ChannelState::AwaitCreateChanResponse, ChannelState::Connected, ChannelState::MustClose],
                )?;
                self.forget_channel(*cid, released);
                deliver(Some(*cid), Some(ChannelState::Closed))
            }
            ClearChannelRequest { sid, cid } => {
                self.expect_state(command, *cid, &[ChannelState::Connected])?;
                self.expect_sid(*cid, *sid)?;
                self.channel_mut(*cid)?.state = ChannelState::MustClose;
                deliver(Some(*cid), Some(ChannelState::MustClose))
            }
            ClearChannelResponse { sid, cid } => {
                self.expect_state(command, *cid, &[ChannelState::MustClose])?;
                self.expect_sid(*cid, *sid)?;
                self.forget_channel(*cid, released);
                deliver(Some(*cid), Some(ChannelState::Closed))
            }
            ReadRequest { data_type, data_count, sid, ioid }
            | ReadNotifyRequest { data_type, data_count, sid, ioid }
            | WriteNotifyRequest { data_type, data_count, sid, ioid, .. } => {
                let cid = self.connected_by_sid(command, *sid)?;
                let kind = IoKind::of_code(command.code()).unwrap_or(IoKind::ReadNotify);
                if self.ios.contains_key(&(kind, *ioid)) {
                    return Err(StateError::DuplicateIoid { command: command.name(), ioid: *ioid });
                }
                self.ios.insert(
                    (kind, *ioid),
                    Entry::new(PendingIo { cid, data_type: *data_type, data_count: *data_count }),
                );
                deliver(Some(cid), Some(ChannelState::Connected))
            }
            WriteRequest { sid, .. } => {
                let cid = self.connected_by_sid(command, *sid)?;
                deliver(Some(cid), Some(ChannelState::Connected))
            }
            ReadResponse { data_type, data_count, ioid, .. }
            | ReadNotifyResponse { data_type, data_count, ioid, .. }
            | WriteNotifyResponse { data_type, data_count, ioid, .. } => {
                let kind = IoKind::of_code(command.code()).unwrap_or(IoKind::ReadNotify);
                let io = self
                    .ios
                    .get(&(kind, *ioid))
                    .ok_or(StateError::UnknownIoid { command: command.name(), ioid: *ioid })?
                    .info;
                // A write confirmation carries no payload, and caproto's server answers a
                // DBR_STRING write to an ENUM channel with DBR_ENUM: only replies with data
                // must match the request's type.
                if io.data_type != *data_type && kind != IoKind::WriteNotify {
                    return Err(StateError::IoMismatch { ioid: *ioid, field: "data_type" });
                }
                if kind != IoKind::WriteNotify {
                    let limit = self.count_limit(io.cid, io.data_count);
                    if *data_count > limit {
                        return Err(StateError::CountTooLarge { command: command.name(), count: *data_count, limit });
                    }
                }
                if let Some(payload) = self.ios.remove(&(kind, *ioid)).and_then(|entry| entry.payload) {
                    released.ios.push((kind, *ioid, payload));
                }
                deliver(Some(io.cid), Some(self.state_of(io.cid)))
            }
            EventAddRequest { data_type, data_count, sid, subscription_id, mask, .. } => {
                let cid = self.connected_by_sid(command, *sid)?;
                if self.subscriptions.contains_key(subscription_id) {
                    return Err(StateError::DuplicateSubscription(*subscription_id));
                }
                self.retired_subscriptions.remove(subscription_id);
                self.subscriptions.insert(
                    *subscription_id,
                    Entry::new(Subscription {
                        cid,
                        sid: *sid,
                        data_type: *data_type,
                        data_count: *data_count,
                        mask: *mask,
                        cancel_pending: false,
                    }),
                );
                deliver(Some(cid), Some(ChannelState::Connected))
            }
            EventCancelRequest { sid, subscription_id, .. } => {
                let subscription = self.subscription_for(*subscription_id)?;
                if subscription.sid != *sid {
                    return Err(StateError::SubscriptionMismatch { subscription_id: *subscription_id, field: "sid" });
                }
                self.expect_state(command, subscription.cid, &[ChannelState::Connected])?;
                if subscription.cancel_pending {
                    return Err(StateError::CancelPending(*subscription_id));
                }
                if let Some(entry) = self.subscriptions.get_mut(subscription_id) {
                    entry.info.cancel_pending = true;
                }
                deliver(Some(subscription.cid), Some(ChannelState::Connected))
            }
            EventAddResponse { data_type, data_count, subscription_id, data, .. } => {
                // Updates racing with a cancel (sent before the server saw it) are
                // dropped quietly, as libca does.
                if direction == Direction::Received {
                    let racing = match self.subscriptions.get(subscription_id) {
                        Some(subscription) => subscription.info.cancel_pending,
                        None => {
                            self.ended_subscriptions.contains(subscription_id)
                                || self.retired_subscriptions.contains(subscription_id)
                        }
                    };
                    if racing {
                        return Ok(Verdict::Absorb);
                    }
                }
                let subscription = self.subscription_for(*subscription_id)?;
                if data.is_empty() {
                    // The receiver would read this as the cancel confirmation.
                    return Err(StateError::EmptyEventBeforeCancel(*subscription_id));
                }
                if subscription.data_type != *data_type {
                    return Err(StateError::SubscriptionMismatch {
                        subscription_id: *subscription_id,
                        field: "data_type",
                    });
                }
                let limit = self.count_limit(subscription.cid, subscription.data_count);
                if *data_count > limit {
                    return Err(StateError::CountTooLarge { command: command.name(), count: *data_count, limit });
                }
                deliver(Some(subscription.cid), Some(self.state_of(subscription.cid)))
            }
            EventCancelResponse { data_type, data_count, sid, subscription_id } => {
                let Some(subscription) = self.subscriptions.get(subscription_id).map(|entry| entry.info) else {
                    if direction == Direction::Received && self.retired_subscriptions.remove(subscription_id) {
                        return Ok(Verdict::Absorb);
                    }
                    return Err(StateError::UnknownSubscription(*subscription_id));
                };
                if !subscription.cancel_pending {
                    if direction == Direction::Sent {
                        return Err(StateError::EmptyEventBeforeCancel(*subscription_id));
                    }
                    // Not a confirmation: a 4.13 update with zero elements,
                    // whose param1 is the status rather than a sid.
                    if subscription.data_type != *data_type {
                        return Err(StateError::SubscriptionMismatch {
                            subscription_id: *subscription_id,
                            field: "data_type",
                        });
                    }
                    return Ok(Verdict::Deliver {
                        rewritten: Some(EventAddResponse {
                            data_type: *data_type,
                            data_count: *data_count,
                            status: *sid,
                            subscription_id: *subscription_id,
                            data: Bytes::new(),
                        }),
                        cid: Some(subscription.cid),
                        channel_state: Some(self.state_of(subscription.cid)),
                        released: Released::default(),
                    });
                }
                if subscription.sid != *sid {
                    return Err(StateError::SubscriptionMismatch { subscription_id: *subscription_id, field: "sid" });
                }
                if let Some(payload) = self.subscriptions.remove(subscription_id).and_then(|entry| entry.payload) {
                    released.subscriptions.push((*subscription_id, payload));
                }
                if direction == Direction::Received {
                    if self.ended_subscriptions.len() >= MAX_RETIRED_SUBSCRIPTIONS {
                        self.ended_subscriptions.clear();
                    }
                    self.ended_subscriptions.insert(*subscription_id);
                }
                deliver(Some(subscription.cid), Some(self.state_of(subscription.cid)))
            }
            SearchResponse { .. }
            | NotFoundResponse { .. }
            | EchoRequest
            | EchoResponse
            | EventsOffRequest
            | EventsOnRequest
            | ReadSyncRequest
            | ClientNameRequest { .. }
            | HostNameRequest { .. }
            | Obsolete { .. } => deliver(None, None),
            DatagramVersion { .. }
            | Beacon { .. }
            | RepeaterRegisterRequest { .. }
            | RepeaterConfirmResponse { .. } => {
                return Err(StateError::NotACircuitCommand { command: command.name() });
            }
        })
    }

    fn note_version(&mut self, version: u16, direction: Direction) {
        match direction {
            Direction::Sent => self.sent_version = true,
            // Servers older than 4.11 send VERSION 0 as a no-op; it says
            // nothing about their version.
            Direction::Received if version != 0 => self.peer_version = Some(version),
            Direction::Received => {}
        }
    }

    /// Applies the side effects of an ERROR reply; returns the channel the
    /// failed request concerned, when known.
    fn settle_failed_request(
        &mut self,
        original: &crate::proto::header::Header,
        released: &mut Released<P>,
    ) -> Option<u32> {
        if let Some(kind) = IoKind::of_code(original.command) {
            let entry = self.ios.remove(&(kind, original.param2))?;
            if let Some(payload) = entry.payload {
                released.ios.push((kind, original.param2, payload));
            }
            return Some(entry.info.cid);
        }
        match original.command {
            code::EVENT_ADD => {
                let entry = self.subscriptions.remove(&original.param2)?;
                if let Some(payload) = entry.payload {
                    released.subscriptions.push((original.param2, payload));
                }
                Some(entry.info.cid)
            }
            code::CREATE_CHAN => {
                let cid = original.param1;
                let awaiting =
                    self.channels.get(&cid).is_some_and(|c| c.info.state == ChannelState::AwaitCreateChanResponse);
                if awaiting {
                    self.forget_channel(cid, released);
                    Some(cid)
                } else {
                    None
                }
            }
            _ => self.cid_by_sid.get(&original.param1).copied(),
        }
    }

    fn state_of(&self, cid: u32) -> ChannelState {
        self.channels.get(&cid).map_or(ChannelState::Closed, |entry| entry.info.state)
    }

    fn channel_mut(&mut self, cid: u32) -> Result<&mut Channel, StateError> {
        self.channels.get_mut(&cid).map(|entry| &mut entry.info).ok_or(StateError::UnknownCid(cid))
    }

    fn expect_state(&self, command: &Command, cid: u32, allowed: &[ChannelState]) -> Result<ChannelState, StateError> {
        let channel = self.channel(cid).ok_or(StateError::UnknownCid(cid))?;
        if allowed.contains(&channel.state) {
            Ok(channel.state)
        } else {
            Err(StateError::ChannelState { command: command.name(), cid, state: channel.state })
        }
    }

    fn expect_sid(&self, cid: u32, sid: u32) -> Result<(), StateError> {
        match self.channel(cid).and_then(|channel| channel.sid) {
            Some(known) if known == sid => Ok(()),
            _ => Err(StateError::UnknownSid(sid)),
        }
    }

    fn connected_by_sid(&self, command: &Command, sid: u32) -> Result<u32, StateError> {
        let cid = *self.cid_by_sid.get(&sid).ok_or(StateError::UnknownSid(sid))?;
        self.expect_state(command, cid, &[ChannelState::Connected])?;
        Ok(cid)
    }

    fn subscription_for(&self, subscription_id: u32) -> Result<Subscription, StateError> {
        self.subscriptions
            .get(&subscription_id)
            .map(|entry| entry.info)
            .ok_or(StateError::UnknownSubscription(subscription_id))
    }

    /// Largest element count a reply may carry: what was requested, or for a
    /// request of 0 (4.13 "all available") the channel's native count.
    fn count_limit(&self, cid: u32, requested: u32) -> u32 {
        if requested > 0 {
            return requested;
        }
        self.channel(cid).and_then(|channel| channel.native_count).unwrap_or(u32::MAX)
    }

    /// Drops a channel with everything outstanding on it, their payloads going
    /// to `released`. Its active subscriptions are remembered as retired,
    /// because RSRV may still send their cancel confirmations.
    fn forget_channel(&mut self, cid: u32, released: &mut Released<P>) {
        let Some(channel) = self.channels.remove(&cid) else {
            return;
        };
        if let Some(sid) = channel.info.sid {
            self.cid_by_sid.remove(&sid);
        }
        if let Some(payload) = channel.payload {
            released.channels.push((channel.info, payload));
        }
        let ios: Vec<(IoKind, u32)> =
            self.ios.iter().filter(|(_, entry)| entry.info.cid == cid).map(|(key, _)| *key).collect();
        for (kind, ioid) in ios {
            if let Some(payload) = self.ios.remove(&(kind, ioid)).and_then(|entry| entry.payload) {
                released.ios.push((kind, ioid, payload));
            }
        }
        let retired: Vec<u32> =
            self.subscriptions.iter().filter(|(_, entry)| entry.info.cid == cid).map(|(id, _)| *id).collect();
        for id in retired {
            if let Some(payload) = self.subscriptions.remove(&id).and_then(|entry| entry.payload) {
                released.subscriptions.push((id, payload));
            }
            if self.retired_subscriptions.len() >= MAX_RETIRED_SUBSCRIPTIONS {
                self.retired_subscriptions.clear();
            }
            self.retired_subscriptions.insert(id);
        }
    }
}

impl Default for CircuitBook<()> {
    fn default() -> Self {
        Self::new(Role::Client, CA_MINOR_PROTOCOL_REVISION)
    }
}
