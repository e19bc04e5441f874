//! [`LdmsServer`]: the set server on pvloom-core's driver. A listener hands each accepted
//! peer to the least-loaded I/O thread, where a [`ServerConn`] runs under the stream
//! driver (socket, buffers, back-pressure, stall timeout). Each connection has a
//! [`Peer`] handle (send to it, close it), and [`LdmsServer::bind_with_events`] reports
//! its transport events ([`PeerEvent`]) as `ldms_xprt_listen`'s callback does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use pvloom_core::driver::{self, Listener, StreamAddress, StreamApp, StreamConfig};
use pvloom_core::endpoint::CloseReason;
use pvloom_core::mio::Token;
use pvloom_core::mio::net::TcpStream;
use pvloom_core::{Deliverer, IoCtx, RuntimeHandle};

use super::endpoint::{SEND_MSG_MAX, SendError, ServerConfig, ServerConn, ServerEvent};
use super::registry::SetRegistry;

/// A transport event of one accepted connection (`LDMS_XPRT_EVENT_*` on the passive side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// The zap handshake finished: the peer may now be sent to (`EVENT_CONNECTED`).
    Connected,
    /// An application message from the peer, SEND_MSG (`EVENT_RECV`).
    Recv(Bytes),
    /// The peer told this side a set it owns is gone (`EVENT_SET_DELETE`); answered.
    PeerSetDeleted {
        /// The instance name.
        name: String,
    },
    /// The peer acknowledged this side's SET_DELETE of a set it had looked up.
    SetDeleteAcked {
        /// The instance name.
        name: String,
    },
    /// A connected peer's connection ended (`EVENT_DISCONNECTED`); the last event.
    Disconnected(String),
}

/// The event callback of [`LdmsServer::bind_with_events`].
pub type PeerEventCb = Arc<dyn Fn(&Peer, PeerEvent) + Send + Sync>;

struct Shared {
    registry: Arc<SetRegistry>,
    config: ServerConfig,
    connections: AtomicUsize,
    stopping: AtomicBool,
    live: Mutex<HashMap<u64, Peer>>,
    on_event: Option<PeerEventCb>,
}

struct PeerInner {
    id: u64,
    remote: SocketAddr,
    local: Option<SocketAddr>,
    address: Arc<StreamAddress<PeerApp>>,
    connected: AtomicBool,
    closed: AtomicBool,
    /// The endpoint's queued bytes ([`ServerConn::queue_gauge`]).
    queued: Arc<AtomicUsize>,
    /// Bytes handed to the I/O thread by [`Peer::send`] and not yet queued there.
    pending: AtomicUsize,
    limit: usize,
    dropped: AtomicU64,
}

/// One accepted connection of an [`LdmsServer`] (the passive side's `ldms_t`). Cheap to
/// clone; every method may be called from any thread, callbacks included, and none
/// blocks.
#[derive(Clone)]
pub struct Peer {
    inner: Arc<PeerInner>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.inner.id)
            .field("remote", &self.inner.remote)
            .field("connected", &self.is_connected())
            .finish()
    }
}

/// Gives back [`Peer::send`]'s reservation once its message reached the I/O thread (or
/// never will).
struct Reservation {
    peer: Arc<PeerInner>,
    len: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.peer.pending.fetch_sub(self.len, Ordering::AcqRel);
    }
}

impl Peer {
    /// A process-unique id of the connection ([`ServerConn::id`]).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.remote
    }

    /// This side's address of the connection (`None` if the OS did not tell).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local
    }

    /// True from [`PeerEvent::Connected`] until the connection closes.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire) && !self.inner.closed.load(Ordering::Acquire)
    }

    /// Bytes waiting to go to the peer (as of the connection's last I/O, plus sends in
    /// flight to its I/O thread).
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Acquire) + self.inner.pending.load(Ordering::Acquire)
    }

    /// Messages [`send`](Self::send) accepted that the connection then refused (its
    /// queue filled up with pushes in between, or it closed).
    pub fn sends_dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Sends an application message to the peer (SEND_MSG, as `ldms_xprt_send`; it gets
    /// `EVENT_RECV`). Does not wait: the message is queued on the connection's I/O
    /// thread, in order with the other sends from this thread.
    ///
    /// # Errors
    /// [`SendError::NotConnected`] before [`PeerEvent::Connected`] or after close;
    /// [`SendError::TooLong`] beyond [`SEND_MSG_MAX`]; [`SendError::QueueFull`] while
    /// [`ServerConfig::max_queued`] bytes wait for the peer.
    pub fn send(&self, data: impl Into<Bytes>) -> Result<(), SendError> {
        let data: Bytes = data.into();
        if !self.is_connected() {
            return Err(SendError::NotConnected);
        }
        let len = data.len();
        if len > SEND_MSG_MAX {
            return Err(SendError::TooLong { len, max: SEND_MSG_MAX });
        }
        let inner = &self.inner;
        let before = inner.pending.fetch_add(len, Ordering::AcqRel);
        let reservation = Reservation { peer: inner.clone(), len };
        let queued = inner.queued.load(Ordering::Acquire) + before;
        if queued >= inner.limit {
            return Err(SendError::QueueFull { queued, limit: inner.limit });
        }
        let me = inner.clone();
        let sent = inner.address.exec(
            move |app, _| {
                drop(reservation);
                if let Err(e) = app.endpoint.send_msg(data) {
                    me.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %me.remote, "message to the LDMS peer dropped: {e}");
                }
            },
            || {},
        );
        if sent { Ok(()) } else { Err(SendError::NotConnected) }
    }

    /// Closes the connection; [`PeerEvent::Disconnected`] follows.
    pub fn close(&self) {
        self.inner
            .address
            .exec(|app, _| app.endpoint.close(CloseReason::Local("closed by the application".into())), || {});
    }
}

/// The application layer of one peer: keeps the count, forwards events to the callback.
struct PeerApp {
    endpoint: ServerConn,
    shared: Arc<Shared>,
    peer: Peer,
    deliverer: Deliverer,
}

impl PeerApp {
    /// Hands `event` to the server's callback through the runtime's delivery (a panic is
    /// contained and reported there).
    fn deliver(&self, event: PeerEvent) {
        let Some(cb) = self.shared.on_event.clone() else { return };
        let peer = self.peer.clone();
        let origin = "ldms.server_event";
        if let Err(e) = self.deliverer.dispatch(origin, None, move || cb(&peer, event)) {
            self.deliverer.containment().report(origin, &format!("callback not delivered: {e}"));
        }
    }
}

impl StreamApp for PeerApp {
    type Endpoint = ServerConn;

    fn endpoint(&mut self) -> &mut ServerConn {
        &mut self.endpoint
    }

    fn on_event(&mut self, event: ServerEvent, _ctx: &mut IoCtx<'_>) {
        let remote = self.peer.inner.remote;
        let event = match event {
            ServerEvent::Connected { peer } => {
                tracing::debug!(peer = %remote, pid = peer.pid, "LDMS peer connected");
                self.peer.inner.connected.store(true, Ordering::Release);
                PeerEvent::Connected
            }
            ServerEvent::Message { data } => PeerEvent::Recv(data),
            ServerEvent::PeerSetDeleted { name } => PeerEvent::PeerSetDeleted { name },
            ServerEvent::SetDeleteAcked { name } => PeerEvent::SetDeleteAcked { name },
        };
        self.deliver(event);
    }

    fn on_closed(&mut self, reason: &CloseReason, _ctx: &mut IoCtx<'_>) {
        let remote = self.peer.inner.remote;
        if reason.is_orderly() {
            tracing::debug!(peer = %remote, "LDMS peer closed: {reason}");
        } else {
            tracing::info!(peer = %remote, "LDMS peer closed: {reason}");
        }
        self.peer.inner.closed.store(true, Ordering::Release);
        self.shared.live.lock().remove(&self.endpoint.id());
        self.shared.connections.fetch_sub(1, Ordering::AcqRel);
        if self.peer.inner.connected.load(Ordering::Acquire) {
            self.deliver(PeerEvent::Disconnected(reason.to_string()));
        }
    }
}

fn accept(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>, ctx: &mut IoCtx<'_>) {
    let Some(runtime) = ctx.runtime() else { return };
    if shared.stopping.load(Ordering::Acquire) {
        return;
    }
    if shared.connections.load(Ordering::Acquire) >= shared.config.max_connections {
        tracing::warn!(%peer, "LDMS peer refused: {} connections already", shared.config.max_connections);
        return;
    }
    shared.connections.fetch_add(1, Ordering::AcqRel);
    let address = StreamAddress::<PeerApp>::new(runtime.clone(), runtime.least_loaded_thread());
    let shared = shared.clone();
    let thread = address.thread();
    let fallback = shared.clone();
    if runtime.run_on(thread, move |ctx| open(ctx, stream, peer, address, shared)).is_err() {
        fallback.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

fn open(
    ctx: &mut IoCtx<'_>,
    stream: TcpStream,
    peer: SocketAddr,
    address: Arc<StreamAddress<PeerApp>>,
    shared: Arc<Shared>,
) {
    let endpoint = ServerConn::new(shared.registry.clone(), shared.config.clone(), ctx.now());
    if let Some(link) = endpoint.link() {
        link.set_peer_addr(peer);
    }
    let waker = Arc::downgrade(&address);
    // The driver pumps the connection after the call: its queued notes go out.
    endpoint.set_waker(move || {
        if let Some(a) = waker.upgrade() {
            a.exec(|_, _| {}, || {});
        }
    });
    let id = endpoint.id();
    let config = StreamConfig { stall_timeout: shared.config.stall_timeout, ..StreamConfig::default() };
    let handle = Peer {
        inner: Arc::new(PeerInner {
            id,
            remote: peer,
            local: stream.local_addr().ok(),
            address: address.clone(),
            connected: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            queued: endpoint.queue_gauge(),
            pending: AtomicUsize::new(0),
            limit: shared.config.max_queued,
            dropped: AtomicU64::new(0),
        }),
    };
    shared.live.lock().insert(id, handle.clone());
    let deliverer = address.runtime().deliverer();
    let app = PeerApp { endpoint, shared: shared.clone(), peer: handle, deliverer };
    if let Err(e) = driver::adopt(ctx, &address, stream, config, app) {
        tracing::warn!(%peer, "cannot register an LDMS connection: {e}");
        shared.live.lock().remove(&id);
        shared.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The LDMS set server: serves a [`SetRegistry`]'s sets to every peer that connects
/// (ldms_ls, the Python API, an ldmsd aggregator). Dropping it stops listening and
/// closes every connection.
pub struct LdmsServer {
    runtime: RuntimeHandle,
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    listener: Option<(usize, Token)>,
}

impl std::fmt::Debug for LdmsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdmsServer")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.connections())
            .finish()
    }
}

impl LdmsServer {
    /// Listens on `addr` (port 0: a free one) and serves `registry` with `config`.
    ///
    /// # Errors
    /// The bind error, or the runtime is shut down.
    pub fn bind(
        runtime: RuntimeHandle,
        addr: SocketAddr,
        registry: Arc<SetRegistry>,
        config: ServerConfig,
    ) -> std::io::Result<LdmsServer> {
        Self::bind_inner(runtime, addr, registry, config, None)
    }

    /// As [`bind`](Self::bind), and `on_event(peer, event)` gets every accepted
    /// connection's [`PeerEvent`]s, as `ldms_xprt_listen`'s callback does: Connected
    /// first, then Recv, PeerSetDeleted, SetDeleteAcked, and Disconnected last (a
    /// connection that never finished its handshake reports nothing). The callback is
    /// delivered per the runtime's [`Delivery`](pvloom_core::Delivery), in order per
    /// connection; a panic in it is contained and reported, and later events still come.
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub fn bind_with_events(
        runtime: RuntimeHandle,
        addr: SocketAddr,
        registry: Arc<SetRegistry>,
        config: ServerConfig,
        on_event: impl Fn(&Peer, PeerEvent) + Send + Sync + 'static,
    ) -> std::io::Result<LdmsServer> {
        Self::bind_inner(runtime, addr, registry, config, Some(Arc::new(on_event)))
    }

    fn bind_inner(
        runtime: RuntimeHandle,
        addr: SocketAddr,
        registry: Arc<SetRegistry>,
        config: ServerConfig,
        on_event: Option<PeerEventCb>,
    ) -> std::io::Result<LdmsServer> {
        let listener = pvloom_core::driver::bind_tcp(addr)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            registry,
            config,
            connections: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            live: Mutex::new(HashMap::new()),
            on_event,
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let s = shared.clone();
        let thread = runtime.least_loaded_thread();
        runtime
            .run_on(thread, move |ctx| {
                let accept = move |stream, peer, ctx: &mut IoCtx<'_>| accept(stream, peer, &s, ctx);
                let _ = tx.send(ctx.register(Box::new(Listener::new(listener, accept))));
            })
            .map_err(std::io::Error::other)?;
        let token = rx.recv_timeout(Duration::from_secs(10)).map_err(std::io::Error::other)??;
        tracing::info!(%local_addr, "LDMS server listening");
        Ok(LdmsServer { runtime, shared, local_addr, listener: Some((thread, token)) })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections open now (accepted and not yet closed).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Acquire)
    }

    /// The connections open now.
    pub fn peers(&self) -> Vec<Peer> {
        self.shared.live.lock().values().cloned().collect()
    }

    /// The open connection with [`Peer::id`] `id`.
    pub fn peer(&self, id: u64) -> Option<Peer> {
        self.shared.live.lock().get(&id).cloned()
    }

    /// The registry it serves.
    pub fn registry(&self) -> &Arc<SetRegistry> {
        &self.shared.registry
    }

    /// Stops listening and closes every connection (also done on drop).
    pub fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        if let Some((thread, token)) = self.listener.take() {
            let _ = self.runtime.run_on(thread, move |ctx| drop(ctx.deregister(token)));
        }
        let live: Vec<_> = self.shared.live.lock().values().cloned().collect();
        for p in live {
            p.inner.address.exec(|app, _| app.endpoint.close(CloseReason::Local("server shut down".into())), || {});
        }
    }
}

impl Drop for LdmsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
