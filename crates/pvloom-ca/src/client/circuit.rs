//! One virtual circuit to one server (per priority): the application layer above
//! the sans-I/O [`ClientCircuit`], run by pvloom-core's stream driver. It turns the
//! circuit's events into PV state changes, completed operations and subscription
//! callbacks; sockets, buffers, interest and the circuit's one timer are the driver's.

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pvloom_core::driver::{self, StreamAddress, StreamApp, StreamConfig};
use pvloom_core::endpoint::CloseReason;
use pvloom_core::{IoCtx, RuntimeHandle};

use super::context::ContextInner;
use super::endpoint::{ClientCircuit, ClientCircuitConfig, ClientEvent, OpFailure, Payloads};
use super::error::CaError;
use super::op::OpSlot;
use super::pv::{Link, PvShared};
use super::response::Response;
use super::subscription::{BacklogGuard, SubShared};
use crate::proto::command::AccessRights;
use crate::proto::constants::ECHO_TIMEOUT;
use crate::proto::{DbrData, DbrType, DecoderConfig};

/// Updates waiting for callbacks on one circuit above which the client asks the
/// server to hold its updates (EVENTS_OFF), and below which it resumes (EVENTS_ON).
const BACKLOG_HIGH: usize = 8192;
const BACKLOG_LOW: usize = 1024;

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

/// Where a circuit lives, and its marker.
pub(crate) struct CircuitAddress {
    pub(crate) marker: Arc<CircuitMarker>,
    driver: Arc<StreamAddress<CircuitHandler>>,
}

impl CircuitAddress {
    pub(crate) fn new(runtime: RuntimeHandle, thread: usize, marker: Arc<CircuitMarker>) -> Arc<Self> {
        Arc::new(CircuitAddress { marker, driver: StreamAddress::new(runtime, thread) })
    }

    pub(crate) fn thread(&self) -> usize {
        self.driver.thread()
    }

    /// Run `f` with the circuit on its I/O thread; `missing` once it is gone.
    pub(crate) fn exec(
        &self,
        f: impl FnOnce(&mut CircuitHandler, &mut IoCtx<'_>) + Send + 'static,
        missing: impl FnOnce() + Send + 'static,
    ) -> bool {
        self.driver.exec(f, missing)
    }
}

/// A read in flight: whom to tell, and what to name in errors.
pub(crate) struct ReadOp {
    name: String,
    timeout: Duration,
    slot: Arc<OpSlot<Response>>,
}

/// A write in flight.
pub(crate) struct WriteOp {
    name: String,
    timeout: Duration,
    slot: Arc<OpSlot<()>>,
}

pub(crate) struct CircuitPayloads;

impl Payloads for CircuitPayloads {
    type Channel = Arc<PvShared>;
    type Read = ReadOp;
    type Write = WriteOp;
    type Sub = Arc<SubShared>;
}

pub(crate) struct CircuitHandler {
    address: Arc<CircuitAddress>,
    context: Weak<ContextInner>,
    endpoint: ClientCircuit<CircuitPayloads>,
    search_again: bool,
}

fn failure(name: &str, operation: &'static str, timeout: Duration, failure: OpFailure) -> CaError {
    match failure {
        OpFailure::Server { status, message } => CaError::server(name, operation, status, message.as_deref()),
        OpFailure::TimedOut => CaError::Timeout { name: name.to_owned(), operation, timeout },
        OpFailure::Disconnected => CaError::Disconnected { name: name.to_owned(), operation },
        OpFailure::Refused(reason) => CaError::Core(pvloom_core::Error::msg(format!("{name}: {operation}: {reason}"))),
    }
}

impl CircuitHandler {
    /// Connect (non-blocking) and register the circuit on this I/O thread; the
    /// handshake goes out once connected.
    pub(crate) fn open(
        ctx: &mut IoCtx<'_>,
        address: Arc<CircuitAddress>,
        context: &Arc<ContextInner>,
    ) -> Result<(), CaError> {
        let config = &context.config;
        let endpoint_config = ClientCircuitConfig {
            priority: address.marker.priority,
            host_name: config.host_name.clone(),
            client_name: config.client_name.clone(),
            decoder: DecoderConfig {
                max_payload: u32::try_from(config.max_array_bytes).unwrap_or(u32::MAX),
                ..DecoderConfig::default()
            },
            echo_after: config.connection_timeout,
            echo_timeout: ECHO_TIMEOUT,
            ..ClientCircuitConfig::default()
        };
        let handler = CircuitHandler {
            address: address.clone(),
            context: Arc::downgrade(context),
            endpoint: ClientCircuit::new(ctx.now(), endpoint_config),
            search_again: true,
        };
        let stream = StreamConfig {
            connect_timeout: Some(config.connection_timeout.max(Duration::from_secs(1))),
            read_chunk: 256 * 1024,
            reads_per_turn: 32,
            ..StreamConfig::default()
        };
        driver::connect(ctx, &address.driver, SocketAddr::V4(address.marker.addr), stream, handler)?;
        Ok(())
    }

    pub(crate) fn create_channel(&mut self, pv: &Arc<PvShared>) {
        self.endpoint.create_channel(pv.cid, &pv.name, pv.clone());
    }

    pub(crate) fn clear_channel(&mut self, pv: &Arc<PvShared>) {
        self.endpoint.clear_channel(pv.cid);
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_read(
        &mut self,
        now: Instant,
        pv: &Arc<PvShared>,
        data_type: DbrType,
        count: u32,
        notify: bool,
        timeout: Duration,
        slot: Arc<OpSlot<Response>>,
    ) {
        let op = ReadOp { name: pv.name.clone(), timeout, slot };
        self.endpoint.read(pv.cid, data_type, count, notify, now + timeout, op);
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_write(
        &mut self,
        now: Instant,
        pv: &Arc<PvShared>,
        data_type: DbrType,
        value: DbrData,
        notify: bool,
        timeout: Duration,
        slot: Arc<OpSlot<()>>,
    ) {
        let op = WriteOp { name: pv.name.clone(), timeout, slot };
        self.endpoint.write(pv.cid, data_type, &value, notify, now + timeout, op);
    }

    /// Send EVENT_ADD for a subscription on this circuit (after connect and on
    /// reconnection); nothing if it is already live here.
    pub(crate) fn add_subscription(&mut self, sub: &Arc<SubShared>, link: &Link) {
        let current = sub.wire_id();
        if current != 0 && self.endpoint.has_subscription(current) {
            return;
        }
        let wire = sub.new_wire_id();
        let (data_type, count) = sub.request_for(link.native_type, link.count);
        self.endpoint.subscribe(sub.pv.cid, wire, data_type, count, sub.options.mask, sub.clone());
    }

    pub(crate) fn cancel_subscription(&mut self, sub: &Arc<SubShared>) {
        self.endpoint.unsubscribe(sub.wire_id());
    }

    /// Search names over this circuit (a name server's).
    pub(crate) fn search(&mut self, items: &[(u32, String)]) {
        self.endpoint.search(items);
    }

    /// EVENTS_OFF / EVENTS_ON asked for by the user.
    pub(crate) fn set_events(&mut self, on: bool) {
        self.address.marker.manual_events_off.store(!on, Ordering::Release);
        self.endpoint.set_events(on);
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
            self.endpoint.set_events(false);
        }
        let address = self.address.clone();
        Some(BacklogGuard {
            on_drop: Some(Box::new(move || {
                let marker = &address.marker;
                let left = marker.backlog.fetch_sub(1, Ordering::AcqRel) - 1;
                if left <= BACKLOG_LOW && marker.auto_events_off.swap(false, Ordering::AcqRel) {
                    if marker.manual_events_off.load(Ordering::Acquire) {
                        return;
                    }
                    tracing::info!(server = %marker.addr, "callbacks caught up: EVENTS_ON");
                    address.exec(|handler, _| handler.endpoint.set_events(true), || {});
                }
            })),
        })
    }

    fn channel_lost(&mut self, pv: &Arc<PvShared>) {
        if self.search_again {
            pv.on_access_rights(AccessRights(0));
        }
        pv.on_disconnected(self.search_again);
    }
}

impl StreamApp for CircuitHandler {
    type Endpoint = ClientCircuit<CircuitPayloads>;

    fn endpoint(&mut self) -> &mut Self::Endpoint {
        &mut self.endpoint
    }

    fn on_event(&mut self, event: ClientEvent<CircuitPayloads>, ctx: &mut IoCtx<'_>) {
        match event {
            ClientEvent::Heard => *self.address.marker.last_heard.lock() = ctx.now(),
            ClientEvent::ChannelCreated { channel, native_type, count, version, .. } => {
                let link = Link { circuit: self.address.clone(), native_type, count, server_version: version.min(13) };
                channel.on_connected(link, self);
            }
            ClientEvent::AccessRights { channel, rights } => channel.on_access_rights(rights),
            ClientEvent::ChannelLost { channel } => self.channel_lost(&channel),
            ClientEvent::ChannelRefused { channel, reason } => {
                // E.g. the previous channel of this cid is still being cleared: try
                // again through a fresh search rather than waiting forever.
                tracing::debug!(pv = channel.name, "channel not created yet: {reason}");
                if let Some(context) = self.context.upgrade() {
                    context.runtime.call_later(Duration::from_millis(100), move || channel.on_disconnected(true));
                }
            }
            ClientEvent::ReadDone { op, result } => match result {
                Ok(response) => op.slot.succeed(response),
                Err(f) => op.slot.fail(failure(&op.name, "read", op.timeout, f)),
            },
            ClientEvent::WriteDone { op, result } => match result {
                Ok(()) => op.slot.succeed(()),
                Err(f) => op.slot.fail(failure(&op.name, "write", op.timeout, f)),
            },
            ClientEvent::Update { sub, response } => {
                let guard = self.count_backlog(&sub);
                sub.deliver(Arc::new(response), guard);
            }
            ClientEvent::SearchReply { search_id, address, port } => {
                // An answer from a name server (EPICS_CA_NAME_SERVERS): "no address"
                // means the name server's own host.
                let server = SocketAddrV4::new(address.unwrap_or(*self.address.marker.addr.ip()), port);
                if let Some(context) = self.context.upgrade() {
                    context.found_by_name_server(search_id, server);
                }
            }
            ClientEvent::ServerError { channel, status, request, message } => {
                let name = channel.as_ref().map_or("<unknown channel>", |pv| pv.name.as_str());
                let detail = (!message.is_empty()).then_some(message.as_str());
                tracing::warn!(
                    server = %self.address.marker.addr,
                    pv = name,
                    request,
                    "server error: {}",
                    CaError::server(name, "request", status, detail)
                );
            }
            ClientEvent::Closed(reason) => {
                let marker = &self.address.marker;
                marker.closed.store(true, Ordering::Release);
                self.search_again = reason != CloseReason::Shutdown;
                if self.search_again {
                    tracing::warn!(server = %marker.addr, priority = marker.priority, "circuit closed: {reason}");
                }
                if let Some(context) = self.context.upgrade() {
                    context.circuit_closed(&self.address);
                }
            }
        }
    }
}
