//! One virtual circuit to one server (per priority): the application layer above
//! the sans-I/O [`ClientCircuit`], run by pvloom-core's stream driver. It turns the
//! circuit's events into PV state changes, completed operations and subscription
//! callbacks; sockets, buffers, interest and the circuit's one timer are the driver's.

use std::marker::PhantomData;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pvloom_core::driver::{self, StreamAddress, StreamApp, StreamConfig};
use pvloom_core::endpoint::CloseReason;
use pvloom_core::{IoCtx, RuntimeHandle};

use super::config::ClientConfig;
use super::endpoint::{ClientCircuit, ClientCircuitConfig, ClientEvent, OpFailure, Payloads};
use super::error::CaError;
use super::op::OpSlot;
use super::response::Response;
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

/// What the circuit hands up, and what it keeps with channels and subscriptions:
/// the client's core implements it, so this driver layer knows nothing above it.
pub(crate) trait CircuitSink: Clone + Send + Sync + Sized + 'static {
    /// Kept with each channel (the PV).
    type Channel: Clone + Send + 'static;
    /// Kept with each subscription.
    type Sub: Clone + Send + 'static;

    /// True when updates of `sub` queue for worker threads (then they are counted
    /// for the circuit's EVENTS_OFF/ON flow control).
    fn queued(sub: &Self::Sub) -> bool;

    /// One event of the circuit, on its I/O thread.
    fn on_event(&self, circuit: &mut CircuitHandler<Self>, event: CircuitEvent<Self>);
}

/// What a circuit reports to its sink.
pub(crate) enum CircuitEvent<S: CircuitSink> {
    /// A channel is connected on this circuit.
    Created { channel: S::Channel, native_type: DbrType, count: u32, version: u16 },
    /// New access rights for a channel.
    AccessRights { channel: S::Channel, rights: AccessRights },
    /// The channel is gone from this circuit; search again unless shutting down.
    Lost { channel: S::Channel, search_again: bool },
    /// CREATE_CHAN could not be sent now.
    Refused { channel: S::Channel },
    /// A subscription update, counted until its callback ran.
    Update { sub: S::Sub, response: Response, backlog: Option<BacklogGuard> },
    /// A name server answered a search made over this circuit.
    NameServerFound { search_id: u32, server: SocketAddrV4 },
    /// The circuit closed.
    Closed,
}

/// Counts one update waiting for its callback; dropping it (after the callback ran,
/// or when a newer update replaced it) uncounts it.
pub(crate) struct BacklogGuard {
    on_drop: Option<Box<dyn FnOnce() + Send>>,
}

impl Drop for BacklogGuard {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

/// Where a circuit lives, and its marker.
pub(crate) struct CircuitAddress<S: CircuitSink> {
    pub(crate) marker: Arc<CircuitMarker>,
    driver: Arc<StreamAddress<CircuitHandler<S>>>,
}

impl<S: CircuitSink> CircuitAddress<S> {
    pub(crate) fn new(runtime: RuntimeHandle, thread: usize, marker: Arc<CircuitMarker>) -> Arc<Self> {
        Arc::new(CircuitAddress { marker, driver: StreamAddress::new(runtime, thread) })
    }

    pub(crate) fn thread(&self) -> usize {
        self.driver.thread()
    }

    /// Run `f` with the circuit on its I/O thread; `missing` once it is gone.
    pub(crate) fn exec(
        &self,
        f: impl FnOnce(&mut CircuitHandler<S>, &mut IoCtx<'_>) + Send + 'static,
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

pub(crate) struct CircuitPayloads<S>(PhantomData<S>);

impl<S: CircuitSink> Payloads for CircuitPayloads<S> {
    type Channel = S::Channel;
    type Read = ReadOp;
    type Write = WriteOp;
    type Sub = S::Sub;
}

pub(crate) struct CircuitHandler<S: CircuitSink> {
    address: Arc<CircuitAddress<S>>,
    sink: S,
    endpoint: ClientCircuit<CircuitPayloads<S>>,
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

impl<S: CircuitSink> CircuitHandler<S> {
    /// Connect (non-blocking) and register the circuit on this I/O thread; the
    /// handshake goes out once connected.
    pub(crate) fn open(
        ctx: &mut IoCtx<'_>,
        address: Arc<CircuitAddress<S>>,
        config: &ClientConfig,
        sink: S,
    ) -> Result<(), CaError> {
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
            sink,
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

    /// The circuit's address (to hand to the channels it connects).
    pub(crate) fn address(&self) -> &Arc<CircuitAddress<S>> {
        &self.address
    }

    pub(crate) fn create_channel(&mut self, cid: u32, name: &str, channel: S::Channel) {
        self.endpoint.create_channel(cid, name, channel);
    }

    pub(crate) fn clear_channel(&mut self, cid: u32) {
        self.endpoint.clear_channel(cid);
    }

    /// Start a read of channel `cid`; its deadline is `now + timeout`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_read(
        &mut self,
        now: Instant,
        cid: u32,
        name: &str,
        data_type: DbrType,
        count: u32,
        notify: bool,
        timeout: Duration,
        slot: Arc<OpSlot<Response>>,
    ) {
        let op = ReadOp { name: name.to_owned(), timeout, slot };
        self.endpoint.read(cid, data_type, count, notify, now + timeout, op);
    }

    /// Start a write to channel `cid`; with notify its deadline is `now + timeout`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_write(
        &mut self,
        now: Instant,
        cid: u32,
        name: &str,
        data_type: DbrType,
        value: DbrData,
        notify: bool,
        timeout: Duration,
        slot: Arc<OpSlot<()>>,
    ) {
        let op = WriteOp { name: name.to_owned(), timeout, slot };
        self.endpoint.write(cid, data_type, &value, notify, now + timeout, op);
    }

    /// True if `wire` is a live subscription on this circuit.
    pub(crate) fn has_subscription(&self, wire: u32) -> bool {
        wire != 0 && self.endpoint.has_subscription(wire)
    }

    /// Send EVENT_ADD for channel `cid` under the fresh id `wire`.
    pub(crate) fn subscribe(&mut self, cid: u32, wire: u32, data_type: DbrType, count: u32, mask: u16, sub: S::Sub) {
        self.endpoint.subscribe(cid, wire, data_type, count, mask, sub);
    }

    pub(crate) fn cancel_subscription(&mut self, wire: u32) {
        self.endpoint.unsubscribe(wire);
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
    fn count_backlog(&mut self, sub: &S::Sub) -> Option<BacklogGuard> {
        if !S::queued(sub) {
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
}

impl<S: CircuitSink> StreamApp for CircuitHandler<S> {
    type Endpoint = ClientCircuit<CircuitPayloads<S>>;

    fn endpoint(&mut self) -> &mut Self::Endpoint {
        &mut self.endpoint
    }

    fn on_event(&mut self, event: ClientEvent<CircuitPayloads<S>>, ctx: &mut IoCtx<'_>) {
        let sink = self.sink.clone();
        match event {
            ClientEvent::Heard => *self.address.marker.last_heard.lock() = ctx.now(),
            ClientEvent::ChannelCreated { channel, native_type, count, version, .. } => {
                sink.on_event(self, CircuitEvent::Created { channel, native_type, count, version: version.min(13) });
            }
            ClientEvent::AccessRights { channel, rights } => {
                sink.on_event(self, CircuitEvent::AccessRights { channel, rights });
            }
            ClientEvent::ChannelLost { channel } => {
                let search_again = self.search_again;
                sink.on_event(self, CircuitEvent::Lost { channel, search_again });
            }
            ClientEvent::ChannelRefused { channel, reason } => {
                // E.g. the previous channel of this cid is still being cleared: the
                // sink tries again through a fresh search.
                tracing::debug!("channel not created yet: {reason}");
                sink.on_event(self, CircuitEvent::Refused { channel });
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
                let backlog = self.count_backlog(&sub);
                sink.on_event(self, CircuitEvent::Update { sub, response, backlog });
            }
            ClientEvent::SearchReply { search_id, address, port } => {
                // An answer from a name server (EPICS_CA_NAME_SERVERS): "no address"
                // means the name server's own host.
                let server = SocketAddrV4::new(address.unwrap_or(*self.address.marker.addr.ip()), port);
                sink.on_event(self, CircuitEvent::NameServerFound { search_id, server });
            }
            ClientEvent::ServerError { channel, status, request, message } => {
                let name = if channel.is_some() { "a channel" } else { "<unknown channel>" };
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
                sink.on_event(self, CircuitEvent::Closed);
            }
        }
    }
}
