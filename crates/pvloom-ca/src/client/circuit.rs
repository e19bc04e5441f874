//! One virtual circuit to one server (per priority), owned by an I/O thread.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;
use pvloom_core::mio::net::TcpStream;
use pvloom_core::mio::{Interest, Registry, Token};
use pvloom_core::{IoCtx, IoHandler, Keep, TimerId};

use super::context::ContextInner;
use super::error::CaError;
use super::handle::{HandlerAddress, Marked};
use super::op::OpSlot;
use super::pv::{Link, PvShared};
use super::response::Response;
use super::subscription::{BacklogGuard, SubShared};
use crate::proto::command::{AccessRights, Command};
use crate::proto::constants::{ECHO_TIMEOUT, eca_is_success};
use crate::proto::keepalive::{Keepalive, KeepaliveAction};
use crate::proto::{Circuit, CircuitConfig, DbrData, DbrType, DecoderConfig, Role};

/// Updates waiting for callbacks on one circuit above which the client asks the
/// server to hold its updates (EVENTS_OFF), and below which it resumes (EVENTS_ON).
const BACKLOG_HIGH: usize = 8192;
const BACKLOG_LOW: usize = 1024;
/// Unsent bytes above which new requests are refused (the server stopped reading).
const MAX_UNSENT: usize = 64 * 1024 * 1024;
/// Socket reads per readiness event before other sockets of the thread get a turn.
const READS_PER_TURN: usize = 32;

/// What identifies a circuit and what other threads may read of it.
pub(crate) struct CircuitMarker {
    pub(crate) addr: SocketAddrV4,
    pub(crate) priority: u16,
    pub(crate) closed: AtomicBool,
    pub(crate) last_heard: Mutex<Instant>,
    backlog: AtomicUsize,
    auto_events_off: AtomicBool,
    manual_events_off: AtomicBool,
}

pub(crate) type CircuitAddress = HandlerAddress<CircuitMarker>;

impl CircuitMarker {
    pub(crate) fn new(addr: SocketAddrV4, priority: u16) -> Arc<Self> {
        Arc::new(CircuitMarker {
            addr,
            priority,
            closed: AtomicBool::new(false),
            last_heard: Mutex::new(Instant::now()),
            backlog: AtomicUsize::new(0),
            auto_events_off: AtomicBool::new(false),
            manual_events_off: AtomicBool::new(false),
        })
    }
}

struct ReadOp {
    name: String,
    slot: Arc<OpSlot<Response>>,
}

struct WriteOp {
    name: String,
    slot: Arc<OpSlot<()>>,
}

pub(crate) struct CircuitHandler {
    address: Arc<CircuitAddress>,
    context: Weak<ContextInner>,
    stream: TcpStream,
    tcp_connected: bool,
    proto: Circuit,
    out: BytesMut,
    writable_interest: bool,
    scratch: Vec<u8>,
    server_version: u16,
    channels: HashMap<u32, Arc<PvShared>>,
    reads: HashMap<u32, ReadOp>,
    writes: HashMap<u32, WriteOp>,
    subscriptions: HashMap<u32, Arc<SubShared>>,
    next_ioid: u32,
    keepalive: Keepalive,
    closed: bool,
    token: Option<Token>,
    registry: Option<Registry>,
}

impl Marked for CircuitHandler {
    type Marker = CircuitMarker;
    fn marker(&self) -> &Arc<CircuitMarker> {
        &self.address.marker
    }
}

impl CircuitHandler {
    /// Open the TCP connection (non-blocking) and register the circuit on this I/O
    /// thread; the handshake is queued and goes out once connected.
    pub(crate) fn open(
        ctx: &mut IoCtx<'_>,
        address: Arc<CircuitAddress>,
        context: &Arc<ContextInner>,
    ) -> Result<(), CaError> {
        let marker = &address.marker;
        let stream = TcpStream::connect(std::net::SocketAddr::V4(marker.addr))?;
        let config = &context.config;
        let decoder = DecoderConfig {
            max_payload: u32::try_from(config.max_array_bytes).unwrap_or(u32::MAX),
            ..DecoderConfig::default()
        };
        let mut handler = CircuitHandler {
            address: address.clone(),
            context: Arc::downgrade(context),
            stream,
            tcp_connected: false,
            proto: Circuit::with_config(Role::Client, CircuitConfig { decoder, ..CircuitConfig::default() }),
            out: BytesMut::with_capacity(4096),
            writable_interest: true,
            scratch: vec![0; 256 * 1024],
            server_version: 0,
            channels: HashMap::new(),
            reads: HashMap::new(),
            writes: HashMap::new(),
            subscriptions: HashMap::new(),
            next_ioid: 1,
            keepalive: Keepalive::with_periods(Instant::now(), config.connection_timeout, ECHO_TIMEOUT),
            closed: false,
            token: None,
            registry: None,
        };
        handler.queue(&[
            Command::VersionRequest {
                priority: marker.priority,
                version: crate::proto::constants::CA_MINOR_PROTOCOL_REVISION,
            },
            Command::HostNameRequest { name: config.host_name.clone() },
            Command::ClientNameRequest { name: config.client_name.clone() },
        ]);
        let token = ctx.register(Box::new(handler))?;
        let _ = address.token.set(token);
        let period = (context.config.connection_timeout / 4).clamp(Duration::from_millis(25), Duration::from_secs(1));
        let checker = address.clone();
        let own_timer: Arc<OnceLock<TimerId>> = Arc::new(OnceLock::new());
        let own_timer_in = own_timer.clone();
        let id = ctx.call_every(period, move |ctx| {
            let alive = ctx.with_handler::<CircuitHandler, _>(token, |handler, _| {
                if !Arc::ptr_eq(handler.marker(), &checker.marker) {
                    return (false, Keep::Yes);
                }
                let keep = handler.check_keepalive();
                (keep == Keep::Yes, keep)
            });
            if alive != Some(true)
                && let Some(&id) = own_timer_in.get()
            {
                ctx.cancel_timer(id);
            }
        });
        let _ = own_timer.set(id);
        Ok(())
    }

    fn check_keepalive(&mut self) -> Keep {
        // Operations that timed out wait for no reply any more.
        self.reads.retain(|_, op| !op.slot.is_finished());
        self.writes.retain(|_, op| !op.slot.is_finished());
        let now = Instant::now();
        match self.keepalive.poll(now) {
            KeepaliveAction::WaitUntil(_) => Keep::Yes,
            KeepaliveAction::SendEcho => {
                self.keepalive.echo_sent(now);
                self.send(&[Command::EchoRequest])
            }
            KeepaliveAction::Unresponsive => self.close("server unresponsive: no echo reply"),
        }
    }

    /// Encode commands into the send buffer without writing.
    fn queue(&mut self, commands: &[Command]) -> Option<CaError> {
        for command in commands {
            if let Err(err) = self.proto.send_into(command, &mut self.out) {
                tracing::warn!(server = %self.address.marker.addr, command = command.name(), "request refused: {err}");
                return Some(CaError::Core(pvloom_core::Error::msg(err.to_string())));
            }
        }
        None
    }

    /// Encode and write commands; `Keep::No` when the connection failed.
    fn send(&mut self, commands: &[Command]) -> Keep {
        self.queue(commands);
        self.flush()
    }

    fn flush(&mut self) -> Keep {
        if !self.tcp_connected {
            return Keep::Yes;
        }
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return self.close("connection closed while sending"),
                Ok(n) => {
                    let _ = self.out.split_to(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return self.close(&format!("send failed: {e}")),
            }
        }
        self.update_interest()
    }

    /// Ask for writability only while bytes wait: otherwise every send would wake us.
    fn update_interest(&mut self) -> Keep {
        let want_write = !self.out.is_empty();
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

    fn next_ioid(&mut self) -> u32 {
        let ioid = self.next_ioid;
        self.next_ioid = self.next_ioid.wrapping_add(1).max(1);
        ioid
    }

    fn refuse_if_backed_up<T: Send + 'static>(&self, slot: &Arc<OpSlot<T>>, name: &str) -> bool {
        if self.out.len() > MAX_UNSENT {
            slot.fail(CaError::Core(pvloom_core::Error::msg(format!("{name}: server is not reading its socket"))));
            return true;
        }
        false
    }

    pub(crate) fn create_channel(&mut self, pv: &Arc<PvShared>) -> Keep {
        let request = Command::CreateChanRequest {
            cid: pv.cid,
            version: crate::proto::constants::CA_MINOR_PROTOCOL_REVISION,
            name: pv.name.clone(),
        };
        if let Some(err) = self.queue(&[request]) {
            // E.g. the previous channel of this cid is still being cleared: try again
            // through a fresh search rather than waiting forever.
            tracing::debug!(pv = pv.name, "channel not created yet: {err}");
            let retry = pv.clone();
            if let Some(context) = self.context.upgrade() {
                context.runtime.call_later(std::time::Duration::from_millis(100), move || retry.on_disconnected(true));
            }
            return Keep::Yes;
        }
        self.channels.insert(pv.cid, pv.clone());
        self.flush()
    }

    pub(crate) fn clear_channel(&mut self, pv: &Arc<PvShared>, sid: u32) -> Keep {
        self.channels.remove(&pv.cid);
        self.send(&[Command::ClearChannelRequest { sid, cid: pv.cid }])
    }

    pub(crate) fn start_read(
        &mut self,
        pv: &Arc<PvShared>,
        link: &Link,
        data_type: DbrType,
        count: u32,
        notify: bool,
        slot: Arc<OpSlot<Response>>,
    ) -> Keep {
        if self.refuse_if_backed_up(&slot, &pv.name) {
            return Keep::Yes;
        }
        let ioid = self.next_ioid();
        let command = if notify {
            Command::read_notify_request(link.sid, ioid, data_type, count)
        } else {
            Command::ReadRequest { data_type, data_count: count.max(1), sid: link.sid, ioid }
        };
        if let Some(err) = self.queue(&[command]) {
            slot.fail(err);
            return Keep::Yes;
        }
        self.reads.insert(ioid, ReadOp { name: pv.name.clone(), slot });
        self.flush()
    }

    pub(crate) fn start_write(
        &mut self,
        pv: &Arc<PvShared>,
        link: &Link,
        data_type: DbrType,
        value: DbrData,
        notify: bool,
        slot: Arc<OpSlot<()>>,
    ) -> Keep {
        if self.refuse_if_backed_up(&slot, &pv.name) {
            return Keep::Yes;
        }
        let ioid = self.next_ioid();
        let command = if notify {
            Command::write_notify_request(link.sid, ioid, data_type, &value)
        } else {
            Command::write_request(link.sid, ioid, data_type, &value)
        };
        let command = match command {
            Ok(command) => command,
            Err(err) => {
                slot.fail(CaError::BadValue { name: pv.name.clone(), reason: err.to_string() });
                return Keep::Yes;
            }
        };
        if let Some(err) = self.queue(&[command]) {
            slot.fail(err);
            return Keep::Yes;
        }
        if notify {
            self.writes.insert(ioid, WriteOp { name: pv.name.clone(), slot });
        } else {
            slot.succeed(());
        }
        self.flush()
    }

    /// Send EVENT_ADD for a subscription on this circuit (called after connect and
    /// on reconnection).
    pub(crate) fn add_subscription(&mut self, sub: &Arc<SubShared>, link: &Link) {
        let current = sub.wire_id();
        if current != 0 && self.subscriptions.get(&current).is_some_and(|s| Arc::ptr_eq(s, sub)) {
            return;
        }
        // A fresh id on the wire each time: an id whose cancel is still unconfirmed
        // can never be confused with the new subscription.
        let wire = sub.new_wire_id();
        let (data_type, count) = sub.request_for(link.native_type, link.count);
        if self.queue(&[Command::event_add_request(link.sid, wire, data_type, count, sub.options.mask)]).is_none() {
            self.subscriptions.insert(wire, sub.clone());
        }
    }

    pub(crate) fn add_subscription_keep(&mut self, sub: &Arc<SubShared>, link: &Link) -> Keep {
        self.add_subscription(sub, link);
        self.flush()
    }

    pub(crate) fn cancel_subscription(&mut self, sub: &Arc<SubShared>) -> Keep {
        let wire = sub.wire_id();
        if self.subscriptions.remove(&wire).is_none() {
            return Keep::Yes;
        }
        let Some(channel) = self.proto.channel(sub.pv.cid).map(|c| c.sid) else { return Keep::Yes };
        let Some(sid) = channel else { return Keep::Yes };
        let (data_type, count) = match self.proto.subscription(wire) {
            Some(s) => (s.data_type, s.data_count),
            None => return Keep::Yes,
        };
        self.send(&[Command::EventCancelRequest { data_type, data_count: count, sid, subscription_id: wire }])
    }

    /// Search names over this circuit (a name server's). Skipped until the server
    /// told its version: SEARCH over TCP needs 4.12 or later.
    pub(crate) fn search(&mut self, items: &[(u32, String)]) -> Keep {
        if self.proto.book().peer_version().is_none_or(|v| v < crate::proto::constants::CA_V412) {
            return Keep::Yes;
        }
        let version = crate::proto::constants::CA_MINOR_PROTOCOL_REVISION;
        let commands: Vec<Command> = items
            .iter()
            .map(|(cid, name)| Command::SearchRequest { name: name.clone(), do_reply: false, version, search_id: *cid })
            .collect();
        self.send(&commands)
    }

    /// EVENTS_OFF / EVENTS_ON asked for by the user.
    pub(crate) fn set_events(&mut self, on: bool) -> Keep {
        self.address.marker.manual_events_off.store(!on, Ordering::Release);
        let command = if on { Command::EventsOnRequest } else { Command::EventsOffRequest };
        self.send(&[command])
    }

    fn read_available(&mut self, ctx: &mut IoCtx<'_>) -> Keep {
        for _ in 0..READS_PER_TURN {
            match self.stream.read(&mut self.scratch) {
                Ok(0) => return self.close("server closed the connection"),
                Ok(n) => {
                    self.proto.recv(&self.scratch[..n]);
                    let now = Instant::now();
                    self.keepalive.heard(now);
                    *self.address.marker.last_heard.lock() = now;
                    if self.process_events() == Keep::No {
                        return Keep::No;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Keep::Yes,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(&format!("receive failed: {e}")),
            }
        }
        // More may be waiting; readiness is edge-triggered, so come back for it after
        // the thread's other sockets had their turn.
        let _ = ctx;
        self.address.exec::<CircuitHandler>(|handler, ctx| handler.read_available(ctx), || {});
        Keep::Yes
    }

    fn process_events(&mut self) -> Keep {
        loop {
            match self.proto.poll_event() {
                Ok(Some(event)) => {
                    if self.handle(event.command) == Keep::No {
                        return Keep::No;
                    }
                }
                Ok(None) => return self.flush(),
                Err(err) => return self.close(&format!("protocol error from server: {err}")),
            }
        }
    }

    fn handle(&mut self, command: Command) -> Keep {
        match command {
            Command::VersionResponse { version } => self.server_version = version,
            Command::CreateChanResponse { data_type, data_count, cid, sid } => {
                if let Some(pv) = self.channels.get(&cid).cloned() {
                    let link = Link {
                        circuit: self.address.clone(),
                        sid,
                        native_type: data_type,
                        count: data_count,
                        server_version: self.server_version.max(self.proto.protocol_version().min(13)),
                    };
                    pv.on_connected(link, self);
                }
            }
            Command::AccessRightsResponse { cid, access_rights } => {
                if let Some(pv) = self.channels.get(&cid).cloned() {
                    pv.on_access_rights(access_rights);
                }
            }
            Command::CreateChFailResponse { cid } | Command::ServerDisconnResponse { cid } => {
                if let Some(pv) = self.channels.remove(&cid) {
                    tracing::info!(pv = pv.name, server = %self.address.marker.addr, "server dropped the channel");
                    self.subscriptions.retain(|_, s| s.pv.cid != cid);
                    pv.on_access_rights(AccessRights(0));
                    pv.on_disconnected(true);
                }
            }
            Command::ReadNotifyResponse { data_type, data_count, status, ioid, data } => {
                let Some(op) = self.reads.remove(&ioid) else { return Keep::Yes };
                if !eca_is_success(status) {
                    op.slot.fail(CaError::server(&op.name, "read", status, None));
                    return Keep::Yes;
                }
                match DbrData::decode(data_type, data_count, &data) {
                    Ok(decoded) => op.slot.succeed(Response { data_type, data_count, status, data: decoded }),
                    Err(err) => return self.close(&format!("malformed read reply for {}: {err}", op.name)),
                }
            }
            // The obsolete READ reply carries the channel's cid where READ_NOTIFY has a
            // status: it only ever reports success.
            Command::ReadResponse { data_type, data_count, ioid, data, .. } => {
                let Some(op) = self.reads.remove(&ioid) else { return Keep::Yes };
                match DbrData::decode(data_type, data_count, &data) {
                    Ok(decoded) => op.slot.succeed(Response {
                        data_type,
                        data_count,
                        status: crate::proto::constants::ECA_NORMAL,
                        data: decoded,
                    }),
                    Err(err) => return self.close(&format!("malformed read reply for {}: {err}", op.name)),
                }
            }
            Command::WriteNotifyResponse { status, ioid, .. } => {
                let Some(op) = self.writes.remove(&ioid) else { return Keep::Yes };
                if eca_is_success(status) {
                    op.slot.succeed(());
                } else {
                    op.slot.fail(CaError::server(&op.name, "write", status, None));
                }
            }
            Command::EventAddResponse { data_type, data_count, status, subscription_id, data } => {
                let Some(sub) = self.subscriptions.get(&subscription_id).cloned() else { return Keep::Yes };
                match DbrData::decode(data_type, data_count, &data) {
                    Ok(decoded) => {
                        let response = Arc::new(Response { data_type, data_count, status, data: decoded });
                        let guard = self.count_backlog(&sub);
                        sub.deliver(response, guard);
                    }
                    Err(err) => return self.close(&format!("malformed update for {}: {err}", sub.pv.name)),
                }
            }
            Command::EventCancelResponse { subscription_id, .. } => {
                self.subscriptions.remove(&subscription_id);
            }
            Command::ErrorResponse { cid, status, original_request, message } => {
                return self.handle_error(cid, status, original_request, &message);
            }
            Command::SearchResponse { port, server_address, search_id, .. } => {
                // An answer from a name server (EPICS_CA_NAME_SERVERS): "no address"
                // means the name server's own host.
                let server = SocketAddrV4::new(server_address.unwrap_or(*self.address.marker.addr.ip()), port);
                if let Some(context) = self.context.upgrade() {
                    context.found_by_name_server(search_id, server);
                }
            }
            Command::NotFoundResponse { .. } => {}
            Command::EchoResponse | Command::ClearChannelResponse { .. } => {}
            other => tracing::debug!(command = other.name(), "ignored on a client circuit"),
        }
        Keep::Yes
    }

    fn handle_error(&mut self, cid: u32, status: u32, request: crate::proto::Header, message: &str) -> Keep {
        use crate::proto::command::code;
        let detail = (!message.is_empty()).then_some(message);
        match request.command {
            code::READ_NOTIFY | code::READ => {
                if let Some(op) = self.reads.remove(&request.param2) {
                    op.slot.fail(CaError::server(&op.name, "read", status, detail));
                }
            }
            code::WRITE_NOTIFY => {
                if let Some(op) = self.writes.remove(&request.param2) {
                    op.slot.fail(CaError::server(&op.name, "write", status, detail));
                }
            }
            _ => {
                let name = self.channels.get(&cid).map_or("<unknown channel>", |pv| pv.name.as_str());
                tracing::warn!(
                    server = %self.address.marker.addr,
                    pv = name,
                    request = request.command,
                    "server error: {}",
                    CaError::server(name, "request", status, detail)
                );
            }
        }
        Keep::Yes
    }

    /// With ordered delivery, count the update until its callback ran (or a newer
    /// one replaced it) and switch the server's updates off and on around a backlog.
    fn count_backlog(&mut self, sub: &Arc<SubShared>) -> Option<BacklogGuard> {
        if sub.deliverer.is_inline() {
            return None;
        }
        let marker = self.address.marker.clone();
        let waiting = marker.backlog.fetch_add(1, Ordering::AcqRel) + 1;
        if waiting > BACKLOG_HIGH && !marker.auto_events_off.swap(true, Ordering::AcqRel) {
            tracing::info!(server = %marker.addr, waiting, "callbacks behind: EVENTS_OFF");
            self.queue(&[Command::EventsOffRequest]);
        }
        let address = self.address.clone();
        Some(BacklogGuard {
            on_drop: Some(Box::new(move || {
                let left = address.marker.backlog.fetch_sub(1, Ordering::AcqRel) - 1;
                if left <= BACKLOG_LOW && address.marker.auto_events_off.swap(false, Ordering::AcqRel) {
                    if address.marker.manual_events_off.load(Ordering::Acquire) {
                        return;
                    }
                    tracing::info!(server = %address.marker.addr, "callbacks caught up: EVENTS_ON");
                    address.exec::<CircuitHandler>(|handler, _| handler.send(&[Command::EventsOnRequest]), || {});
                }
            })),
        })
    }

    /// Close the circuit: fail what is outstanding, disconnect its channels (they
    /// search again), and leave the context's table.
    fn close(&mut self, reason: &str) -> Keep {
        self.shut(reason, true);
        Keep::No
    }

    fn shut(&mut self, reason: &str, search_again: bool) {
        if self.closed {
            return;
        }
        self.closed = true;
        let marker = &self.address.marker;
        marker.closed.store(true, Ordering::Release);
        if search_again {
            tracing::warn!(server = %marker.addr, priority = marker.priority, "circuit closed: {reason}");
        }
        self.proto.disconnect();
        for (_, op) in self.reads.drain() {
            op.slot.fail(CaError::Disconnected { name: op.name, operation: "read" });
        }
        for (_, op) in self.writes.drain() {
            op.slot.fail(CaError::Disconnected { name: op.name, operation: "write" });
        }
        self.subscriptions.clear();
        if let Some(context) = self.context.upgrade() {
            context.circuit_closed(&self.address);
        }
        for (_, pv) in self.channels.drain() {
            pv.on_disconnected(search_again);
        }
    }
}

impl IoHandler for CircuitHandler {
    fn register(&mut self, registry: &Registry, token: Token) -> std::io::Result<()> {
        self.token = Some(token);
        self.registry = Some(registry.try_clone()?);
        registry.register(&mut self.stream, token, Interest::READABLE | Interest::WRITABLE)
    }

    fn ready(&mut self, ctx: &mut IoCtx<'_>, token: Token, event: &pvloom_core::mio::event::Event) -> Keep {
        if !self.tcp_connected && (event.is_writable() || event.is_readable() || event.is_error()) {
            match self.stream.take_error() {
                Ok(Some(err)) | Err(err) => return self.close(&format!("connect failed: {err}")),
                Ok(None) => {}
            }
            match self.stream.peer_addr() {
                Ok(_) => {
                    self.tcp_connected = true;
                    let _ = self.stream.set_nodelay(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return Keep::Yes,
                Err(e) => return self.close(&format!("connect failed: {e}")),
            }
        }
        if (event.is_readable() || event.is_read_closed()) && self.read_available(ctx) == Keep::No {
            return Keep::No;
        }
        let _ = token;
        self.flush()
    }

    fn closed(&mut self, _ctx: &mut IoCtx<'_>) {
        self.shut("runtime shut down", false);
    }
}
