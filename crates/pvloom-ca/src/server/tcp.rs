//! The TCP side of the server: the listener and one circuit per client.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pvloom_core::mio::net::{TcpListener, TcpStream};
use pvloom_core::mio::{Interest, Registry, Token};
use pvloom_core::{IoCtx, IoHandler, Keep};

use super::ServerShared;
use super::registry::{Outbox, ServedPv, ServerSubscription};
use crate::client::handle::{HandlerAddress, Marked};
use crate::proto::command::{AccessRights, Command, Role, code};
use crate::proto::constants::{
    CA_MINOR_PROTOCOL_REVISION, DBE_ALARM, DBE_VALUE, ECA_BADCOUNT, ECA_NORDACCESS, ECA_NORMAL, ECA_NOWTACCESS,
};
use crate::proto::{Circuit, CircuitConfig, DbrData, DbrType, DecoderConfig, Header};

/// Bytes of updates taken from the outbox per write round.
const WRITE_BUDGET: usize = 256 * 1024;
/// Socket reads per readiness event before the thread's other sockets get a turn.
const READS_PER_TURN: usize = 16;
/// Replies waiting to be sent above which the circuit stops reading requests: a client
/// that asks without reading the answers gets back-pressure, not server memory.
const MAX_UNSENT: usize = 4 * 1024 * 1024;
/// How often a circuit checks that its client still reads.
const STALL_CHECK: Duration = Duration::from_millis(500);

/// Identity of one client connection.
pub(crate) struct ServerMarker {
    pub(crate) peer: SocketAddr,
}

pub(crate) type ServerCircuitAddress = HandlerAddress<ServerMarker>;

/// Accepts clients and hands each to the least-loaded I/O thread.
pub(crate) struct Listener {
    pub(crate) socket: TcpListener,
    pub(crate) shared: Arc<ServerShared>,
}

impl IoHandler for Listener {
    fn register(&mut self, registry: &Registry, token: Token) -> std::io::Result<()> {
        registry.register(&mut self.socket, token, Interest::READABLE)
    }

    fn ready(&mut self, ctx: &mut IoCtx<'_>, _: Token, _: &pvloom_core::mio::event::Event) -> Keep {
        loop {
            match self.socket.accept() {
                Ok((stream, peer)) => {
                    let Some(runtime) = ctx.runtime() else { return Keep::No };
                    if self.shared.clients() >= self.shared.config.max_clients {
                        tracing::warn!(%peer, "client refused: {} clients already", self.shared.config.max_clients);
                        continue;
                    }
                    let thread = runtime.least_loaded_thread();
                    let address = HandlerAddress::new(runtime.clone(), thread, Arc::new(ServerMarker { peer }));
                    let shared = self.shared.clone();
                    let _ = runtime.run_on(thread, move |ctx| ServerCircuit::open(ctx, stream, address, shared));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Keep::Yes,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    return Keep::Yes;
                }
            }
        }
    }
}

struct Channel {
    cid: u32,
    pv: Arc<ServedPv>,
    rights: AccessRights,
}

/// One client's virtual circuit.
pub(crate) struct ServerCircuit {
    address: Arc<ServerCircuitAddress>,
    shared: Arc<ServerShared>,
    stream: TcpStream,
    proto: Circuit,
    out: BytesMut,
    scratch: Vec<u8>,
    outbox: Arc<Outbox>,
    channels: HashMap<u32, Channel>,
    subscriptions: HashMap<u32, (u32, Arc<ServerSubscription>)>,
    next_sid: u32,
    host: String,
    user: String,
    failed_creates: u32,
    stalled_since: Option<Instant>,
    writable_interest: bool,
    registry: Option<Registry>,
    token: Option<Token>,
    closed: bool,
    paused: bool,
    batch: Vec<Bytes>,
}

impl Marked for ServerCircuit {
    type Marker = ServerMarker;
    fn marker(&self) -> &Arc<ServerMarker> {
        &self.address.marker
    }
}

impl ServerCircuit {
    fn open(ctx: &mut IoCtx<'_>, stream: TcpStream, address: Arc<ServerCircuitAddress>, shared: Arc<ServerShared>) {
        let _ = stream.set_nodelay(true);
        let decoder = DecoderConfig {
            max_payload: u32::try_from(shared.config.max_array_bytes).unwrap_or(u32::MAX),
            ..DecoderConfig::default()
        };
        let mut circuit = ServerCircuit {
            outbox: Outbox::new(address.clone()),
            address: address.clone(),
            shared: shared.clone(),
            stream,
            proto: Circuit::with_config(Role::Server, CircuitConfig { decoder, ..CircuitConfig::default() }),
            out: BytesMut::with_capacity(4096),
            scratch: vec![0; 64 * 1024],
            channels: HashMap::new(),
            subscriptions: HashMap::new(),
            next_sid: 1,
            host: address.marker.peer.ip().to_string(),
            user: String::new(),
            failed_creates: 0,
            stalled_since: None,
            writable_interest: true,
            registry: None,
            token: None,
            closed: false,
            paused: false,
            batch: Vec::new(),
        };
        // rsrv announces its version as soon as the circuit opens.
        circuit.queue(&[Command::VersionResponse { version: CA_MINOR_PROTOCOL_REVISION }]);
        match ctx.register(Box::new(circuit)) {
            Ok(token) => {
                let _ = address.token.set(token);
                shared.client_opened();
                tracing::debug!(peer = %address.marker.peer, "client connected");
                // A client that stops reading causes no events: check on it regularly.
                let own_timer: Arc<std::sync::OnceLock<pvloom_core::TimerId>> = Arc::default();
                let (timer, marker) = (own_timer.clone(), address.marker.clone());
                let id = ctx.call_every(STALL_CHECK, move |ctx| {
                    let alive = ctx.with_handler::<ServerCircuit, _>(token, |circuit, _| {
                        if !Arc::ptr_eq(circuit.marker(), &marker) {
                            return (false, Keep::Yes);
                        }
                        let keep = circuit.flush();
                        (keep == Keep::Yes, keep)
                    });
                    if alive != Some(true)
                        && let Some(&id) = timer.get()
                    {
                        ctx.cancel_timer(id);
                    }
                });
                let _ = own_timer.set(id);
            }
            Err(e) => tracing::warn!("cannot register a client circuit: {e}"),
        }
    }

    fn queue(&mut self, commands: &[Command]) {
        for command in commands {
            if let Some(err) = self.queue_checked(command) {
                tracing::debug!(peer = %self.address.marker.peer, command = command.name(), "reply refused: {err}");
            }
        }
    }

    /// Queue one reply; the circuit's rules may refuse it (the error is returned).
    fn queue_checked(&mut self, command: &Command) -> Option<crate::proto::CircuitError> {
        self.proto.send_into(command, &mut self.out).err()
    }

    pub(crate) fn outbox_ready(&mut self) {
        self.outbox.flush_started();
    }

    /// Write what is buffered, then subscription updates, until the socket is full.
    pub(crate) fn flush(&mut self) -> Keep {
        loop {
            if self.out.is_empty() {
                self.move_updates_to_out();
                if self.out.is_empty() {
                    self.stalled_since = None;
                    return self.resume_if_paused();
                }
            }
            match self.stream.write(&self.out) {
                Ok(0) => return self.close("connection closed while sending"),
                Ok(n) => {
                    let _ = self.out.split_to(n);
                    self.stalled_since = None;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if self.resume_if_paused() == Keep::No {
                        return Keep::No;
                    }
                    let since = *self.stalled_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > self.shared.config.send_stall_timeout {
                        return self.close(&format!("client stopped reading for {:?}", since.elapsed()));
                    }
                    return self.update_interest();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe) => {
                    return self.close("client closed the connection (reset)");
                }
                Err(e) => return self.close(&format!("send failed: {e}")),
            }
        }
    }

    /// Read requests again once the replies drained below half the limit.
    fn resume_if_paused(&mut self) -> Keep {
        if self.paused && self.out.len() < MAX_UNSENT / 2 {
            self.paused = false;
            self.address.exec::<ServerCircuit>(|circuit, _| circuit.read_available(), || {});
        }
        self.update_interest()
    }

    fn move_updates_to_out(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        self.outbox.take(WRITE_BUDGET, &mut batch);
        for update in &batch {
            self.out.extend_from_slice(update);
        }
        batch.clear();
        self.batch = batch;
    }

    fn update_interest(&mut self) -> Keep {
        let want_write = !self.out.is_empty() || self.outbox.pending() > 0;
        if want_write == self.writable_interest {
            return Keep::Yes;
        }
        let (Some(registry), Some(token)) = (&self.registry, self.token) else { return Keep::Yes };
        let interest = if want_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        if let Err(e) = registry.reregister(&mut self.stream, token, interest) {
            return self.close(&format!("reregister failed: {e}"));
        }
        self.writable_interest = want_write;
        Keep::Yes
    }

    fn read_available(&mut self) -> Keep {
        // Requests already buffered come first; they may pause us again.
        if self.paused {
            return Keep::Yes;
        }
        if self.process() == Keep::No {
            return Keep::No;
        }
        if self.paused {
            return Keep::Yes;
        }
        for _ in 0..READS_PER_TURN {
            match self.stream.read(&mut self.scratch) {
                Ok(0) => return self.close("client closed the connection"),
                Ok(n) => {
                    self.proto.recv(&self.scratch[..n]);
                    if self.process() == Keep::No {
                        return Keep::No;
                    }
                    if self.paused {
                        return Keep::Yes;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Keep::Yes,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return self.close("client closed the connection (reset)");
                }
                Err(e) => return self.close(&format!("receive failed: {e}")),
            }
        }
        self.address.exec::<ServerCircuit>(|circuit, _| circuit.read_available(), || {});
        Keep::Yes
    }

    fn process(&mut self) -> Keep {
        loop {
            if self.out.len() > MAX_UNSENT {
                self.paused = true;
                return self.flush();
            }
            match self.proto.poll_event() {
                Ok(Some(event)) => {
                    if self.handle(event.command) == Keep::No {
                        return Keep::No;
                    }
                }
                Ok(None) => return self.flush(),
                Err(err) => return self.close(&format!("bad input from client: {err}")),
            }
        }
    }

    fn rights_for(&self, pv: &ServedPv) -> AccessRights {
        let group = pv.backend.access_group();
        let rules = self.shared.access.rights_in_group(&pv.name, group.as_deref(), &self.host, &self.user);
        if pv.backend.writable() { rules } else { AccessRights(rules.0 & crate::proto::constants::ACCESS_RIGHT_READ) }
    }

    fn error(&mut self, cid: u32, status: u32, request: Header, message: &str) {
        self.queue(&[Command::ErrorResponse { cid, status, original_request: request, message: message.to_owned() }]);
    }

    fn handle(&mut self, command: Command) -> Keep {
        match command {
            Command::VersionRequest { .. } | Command::ReadSyncRequest => {}
            Command::HostNameRequest { name } => {
                self.host = name;
                self.refresh_rights();
            }
            Command::ClientNameRequest { name } => {
                self.user = name;
                self.refresh_rights();
            }
            Command::CreateChanRequest { cid, name, .. } => return self.create_channel(cid, &name),
            Command::SearchRequest { name, search_id, do_reply, version } => {
                if self.shared.registry.contains(&name) {
                    let port = self.shared.tcp_port;
                    self.queue(&[Command::SearchResponse { port, server_address: None, search_id, version: None }]);
                } else if do_reply {
                    // A name server's client asked to be told (rsrv's search_reply_tcp).
                    self.queue(&[Command::NotFoundResponse { do_reply, version, search_id }]);
                }
            }
            Command::ReadNotifyRequest { data_type, data_count, sid, ioid } => {
                let header = Header {
                    command: code::READ_NOTIFY,
                    payload_size: 0,
                    data_type: data_type.code(),
                    data_count,
                    param1: sid,
                    param2: ioid,
                };
                let Some(channel) = self.channels.get(&sid) else { return Keep::Yes };
                let (rights, pv) = (channel.rights, channel.pv.clone());
                let _ = header;
                // Failures are READ_NOTIFY replies carrying the status and a zeroed value,
                // as rsrv sends them (clients match them to the pending read).
                let failed = |status: u32| {
                    let count = zeroed_count(data_count, pv.backend.element_count());
                    Command::ReadNotifyResponse {
                        data_type,
                        data_count: count,
                        status,
                        ioid,
                        data: zeroed(data_type, count),
                    }
                };
                let reply = if !rights.can_read() {
                    failed(ECA_NORDACCESS)
                } else {
                    match pv.backend.read(data_type, data_count) {
                        Ok(data) => Command::read_notify_response(ioid, ECA_NORMAL, data_type, &data)
                            .unwrap_or_else(|_| failed(ECA_BADCOUNT)),
                        Err(status) => failed(status),
                    }
                };
                if let Some(err) = self.queue_checked(&reply) {
                    tracing::debug!("read reply refused ({err}); answering with ECA_BADCOUNT");
                    let fallback = failed(ECA_BADCOUNT);
                    self.queue(&[fallback]);
                }
            }
            Command::ReadRequest { data_type, data_count, sid, ioid } => {
                let Some(channel) = self.channels.get(&sid) else { return Keep::Yes };
                let (cid, rights, pv) = (channel.cid, channel.rights, channel.pv.clone());
                let header = Header {
                    command: code::READ,
                    payload_size: 0,
                    data_type: data_type.code(),
                    data_count,
                    param1: sid,
                    param2: ioid,
                };
                if !rights.can_read() {
                    self.error(cid, ECA_NORDACCESS, header, "no read access");
                    return Keep::Yes;
                }
                let reply = pv.backend.read(data_type, data_count).ok().and_then(|data| {
                    let (count, bytes) = (data.count().ok()?, data.encode(data_type).ok()?);
                    Some(Command::ReadResponse { data_type, data_count: count, cid, ioid, data: bytes })
                });
                match reply {
                    Some(reply) if self.queue_checked(&reply).is_none() => {}
                    _ => self.error(cid, crate::proto::constants::ECA_GETFAIL, header, "read failed"),
                }
            }
            Command::WriteRequest { data_type, data_count, sid, ioid, data } => {
                self.write(data_type, data_count, sid, ioid, &data, false);
            }
            Command::WriteNotifyRequest { data_type, data_count, sid, ioid, data } => {
                self.write(data_type, data_count, sid, ioid, &data, true);
            }
            Command::EventAddRequest { data_type, data_count, sid, subscription_id, mask, .. } => {
                let Some(channel) = self.channels.get(&sid) else { return Keep::Yes };
                let pv = channel.pv.clone();
                if !channel.rights.can_read() {
                    // As rsrv: one update carrying ECA_NORDACCESS and no value.
                    let count = zeroed_count(data_count, pv.backend.element_count());
                    self.queue(&[Command::EventAddResponse {
                        data_type,
                        data_count: count,
                        status: ECA_NORDACCESS,
                        subscription_id,
                        data: zeroed(data_type, count),
                    }]);
                    return Keep::Yes;
                }
                // 0 asks for dynamic size: each update carries the elements there are now
                // (a waveform's NORD), as rsrv's read_reply does; it is not NELM.
                let count = data_count;
                let mask = if mask == 0 { DBE_VALUE | DBE_ALARM } else { mask };
                let subscription = Arc::new(ServerSubscription {
                    id: subscription_id,
                    data_type,
                    count,
                    mask,
                    outbox: self.outbox.clone(),
                });
                self.outbox.register(subscription_id);
                pv.subscribe(&subscription);
                subscription.send_current(&pv.backend);
                self.subscriptions.insert(subscription_id, (sid, subscription));
            }
            Command::EventCancelRequest { data_type, data_count, sid, subscription_id } => {
                self.subscriptions.remove(&subscription_id);
                self.outbox.forget(subscription_id);
                self.queue(&[Command::EventCancelResponse { data_type, data_count, sid, subscription_id }]);
            }
            Command::EventsOffRequest => self.outbox.set_events(false),
            Command::EventsOnRequest => self.outbox.set_events(true),
            Command::ClearChannelRequest { sid, cid } => {
                self.channels.remove(&sid);
                let gone: Vec<u32> =
                    self.subscriptions.iter().filter(|(_, (s, _))| *s == sid).map(|(id, _)| *id).collect();
                for id in gone {
                    self.subscriptions.remove(&id);
                    self.outbox.forget(id);
                }
                self.queue(&[Command::ClearChannelResponse { sid, cid }]);
            }
            Command::EchoRequest => self.queue(&[Command::EchoResponse]),
            other => tracing::debug!(command = other.name(), "ignored from a client"),
        }
        Keep::Yes
    }

    fn create_channel(&mut self, cid: u32, name: &str) -> Keep {
        let Some(pv) = self.shared.registry.get(name) else {
            self.failed_creates += 1;
            if self.failed_creates > self.shared.config.max_failed_creates {
                return self.close(&format!("{} channel creates for names this server lacks", self.failed_creates));
            }
            self.queue(&[Command::CreateChFailResponse { cid }]);
            return Keep::Yes;
        };
        if self.channels.len() >= self.shared.config.max_channels_per_client {
            return self.close(&format!("more than {} channels", self.shared.config.max_channels_per_client));
        }
        let sid = self.next_sid;
        self.next_sid = self.next_sid.wrapping_add(1).max(1);
        let rights = self.rights_for(&pv);
        let (native, count) = (pv.backend.native_type(), pv.backend.element_count());
        self.channels.insert(sid, Channel { cid, pv, rights });
        self.queue(&[
            Command::AccessRightsResponse { cid, access_rights: rights },
            Command::CreateChanResponse { data_type: native, data_count: count, cid, sid },
        ]);
        Keep::Yes
    }

    fn refresh_rights(&mut self) {
        let changes: Vec<(u32, u32, AccessRights)> = self
            .channels
            .iter()
            .map(|(sid, c)| (*sid, c.cid, self.rights_for(&c.pv)))
            .filter(|(sid, _, rights)| self.channels.get(sid).is_some_and(|c| c.rights != *rights))
            .collect();
        for (sid, cid, rights) in changes {
            if let Some(channel) = self.channels.get_mut(&sid) {
                channel.rights = rights;
            }
            self.queue(&[Command::AccessRightsResponse { cid, access_rights: rights }]);
        }
    }

    fn write(&mut self, data_type: DbrType, data_count: u32, sid: u32, ioid: u32, payload: &[u8], notify: bool) {
        let header = Header {
            command: if notify { code::WRITE_NOTIFY } else { code::WRITE },
            payload_size: 0,
            data_type: data_type.code(),
            data_count,
            param1: sid,
            param2: ioid,
        };
        let Some(channel) = self.channels.get(&sid) else { return };
        let (cid, rights, pv) = (channel.cid, channel.rights, channel.pv.clone());
        let status = if !rights.can_write() {
            ECA_NOWTACCESS
        } else {
            match DbrData::decode(data_type, data_count, payload) {
                Ok(data) => match pv.backend.write(data_type, &data) {
                    Ok(events) => {
                        pv.post(events);
                        ECA_NORMAL
                    }
                    Err(status) => status,
                },
                Err(_) => crate::proto::constants::ECA_BADTYPE,
            }
        };
        // The client's own subscription updates caused by this write go out before the
        // write's confirmation, so a client that reads its monitor cache right after a
        // completed put sees the new value (what clients of rsrv observe).
        self.move_updates_to_out();
        if notify {
            self.queue(&[Command::WriteNotifyResponse { data_type, data_count, status, ioid }]);
        } else if status != ECA_NORMAL {
            self.error(cid, status, header, "write failed");
        }
    }

    fn close(&mut self, reason: &str) -> Keep {
        self.shut(reason);
        Keep::No
    }

    fn shut(&mut self, reason: &str) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.shared.client_closed();
        let peer = self.address.marker.peer;
        if reason.starts_with("client closed") {
            tracing::debug!(%peer, "client disconnected");
        } else {
            tracing::warn!(%peer, host = self.host, user = self.user, "client disconnected: {reason}");
        }
        self.subscriptions.clear();
        self.channels.clear();
        self.proto.disconnect();
    }
}

impl IoHandler for ServerCircuit {
    fn register(&mut self, registry: &Registry, token: Token) -> std::io::Result<()> {
        self.token = Some(token);
        self.registry = Some(registry.try_clone()?);
        registry.register(&mut self.stream, token, Interest::READABLE | Interest::WRITABLE)
    }

    fn ready(&mut self, _ctx: &mut IoCtx<'_>, _token: Token, event: &pvloom_core::mio::event::Event) -> Keep {
        if (event.is_readable() || event.is_read_closed()) && self.read_available() == Keep::No {
            return Keep::No;
        }
        self.flush()
    }

    fn closed(&mut self, _ctx: &mut IoCtx<'_>) {
        self.shut("server shutting down");
    }
}

/// Elements of a failure reply: what was asked for, at most what the channel holds; a
/// dynamic-size request (0) gets 0, as from rsrv.
fn zeroed_count(requested: u32, channel: u32) -> u32 {
    requested.min(channel.max(1))
}

/// A zeroed payload of `count` elements of `data_type` (the value of a failed read); at
/// least one element's room, as rsrv's `dbr_size_n(type, 0)`.
fn zeroed(data_type: DbrType, count: u32) -> bytes::Bytes {
    bytes::Bytes::from(vec![0u8; data_type.padded_payload_size(count.max(1)) as usize])
}

/// How long a client may leave its socket unread before it is disconnected.
pub const DEFAULT_SEND_STALL_TIMEOUT: Duration = Duration::from_secs(30);
