//! [`LdmsServer`]: the set server on pvloom-core's driver. A listener hands each accepted
//! peer to the least-loaded I/O thread, where a [`ServerConn`] runs under the stream
//! driver (socket, buffers, back-pressure, stall timeout).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use pvloom_core::driver::{self, Listener, StreamAddress, StreamApp, StreamConfig};
use pvloom_core::endpoint::CloseReason;
use pvloom_core::mio::Token;
use pvloom_core::mio::net::TcpStream;
use pvloom_core::{IoCtx, RuntimeHandle};

use super::endpoint::{ServerConfig, ServerConn, ServerEvent};
use super::registry::SetRegistry;

struct Shared {
    registry: Arc<SetRegistry>,
    config: ServerConfig,
    connections: AtomicUsize,
    stopping: AtomicBool,
    live: Mutex<HashMap<u64, Arc<StreamAddress<PeerApp>>>>,
}

/// The application layer of one peer: logs its events and keeps the count.
struct PeerApp {
    endpoint: ServerConn,
    shared: Arc<Shared>,
    peer: SocketAddr,
}

impl StreamApp for PeerApp {
    type Endpoint = ServerConn;

    fn endpoint(&mut self) -> &mut ServerConn {
        &mut self.endpoint
    }

    fn on_event(&mut self, event: ServerEvent, _ctx: &mut IoCtx<'_>) {
        match event {
            ServerEvent::Connected { peer } => {
                tracing::debug!(peer = %self.peer, pid = peer.pid, "LDMS peer connected")
            }
            other => tracing::debug!(peer = %self.peer, "{other:?}"),
        }
    }

    fn on_closed(&mut self, reason: &CloseReason, _ctx: &mut IoCtx<'_>) {
        if reason.is_orderly() {
            tracing::debug!(peer = %self.peer, "LDMS peer closed: {reason}");
        } else {
            tracing::info!(peer = %self.peer, "LDMS peer closed: {reason}");
        }
        self.shared.live.lock().remove(&self.endpoint.id());
        self.shared.connections.fetch_sub(1, Ordering::AcqRel);
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
    let waker = Arc::downgrade(&address);
    // The driver pumps the connection after the call: its queued notes go out.
    endpoint.set_waker(move || {
        if let Some(a) = waker.upgrade() {
            a.exec(|_, _| {}, || {});
        }
    });
    let id = endpoint.id();
    let config = StreamConfig { stall_timeout: shared.config.stall_timeout, ..StreamConfig::default() };
    shared.live.lock().insert(id, address.clone());
    let app = PeerApp { endpoint, shared: shared.clone(), peer };
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
        let listener = pvloom_core::driver::bind_tcp(addr)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            registry,
            config,
            connections: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            live: Mutex::new(HashMap::new()),
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
        for a in live {
            a.exec(|app, _| app.endpoint.close(CloseReason::Local("server shut down".into())), || {});
        }
    }
}

impl Drop for LdmsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
