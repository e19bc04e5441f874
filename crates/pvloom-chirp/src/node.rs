//! [`Chirp`]: a chirp node on pvloom's shared driver: a listener, one connection per
//! remote (either side may open it), a bounded send queue per remote, and the send,
//! request and release operations in their non-blocking (a [`Completion`]) and
//! blocking (the same plus a wait) forms.
//!
//! Messages for a remote wait in its queue in the node until a connection to it has
//! finished its handshake; that connection then takes as many as its own bounded
//! queue holds, and more each time one completes. A connection that fails gives back
//! what it had not begun to write; the remote is blocked for 50–550 ms, then
//! connected again if messages wait. A connect that fails fails one waiting message
//! (as libchirp does), so a dead remote drains its queue instead of retrying forever.
//!
//! Departure from libchirp: `request` registers for the answer before the request is
//! sent, so an answer cannot arrive unmatched (libchirp's Python pool loses some).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use pvloom_core::driver::{self, Listener, StreamAddress, StreamApp, StreamConfig};
use pvloom_core::mio::Token;
use pvloom_core::{CloseReason, Completer, Completion, Deliverer, IoCtx, RuntimeHandle};

use crate::config::{Config, Limits};
use crate::conn::{ConnEvent, Connection, SendToken};
use crate::error::{ConfigError, SendError, SendFailure};
use crate::identity::Identity;
use crate::message::{Outgoing, Received};
use crate::remote::{RemoteKey, RemoteTable};
use crate::slots::SlotId;
use crate::stats::{Counters, NodeStats};
use crate::tls::{Secured, TlsContext, encrypts};
use crate::wire::Handshake;

/// What a node operation can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChirpError {
    /// The configuration is refused.
    #[error("bad configuration: {0}")]
    Config(#[from] ConfigError),
    /// The message was not queued (back-pressure, size).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The message was queued but did not complete.
    #[error(transparent)]
    Failed(#[from] SendFailure),
    /// No answer to a request within TIMEOUT.
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    /// The node is stopped.
    #[error("chirp node stopped")]
    Stopped,
    /// Listening failed.
    #[error("cannot listen: {0}")]
    Listen(String),
    /// The runtime refused (shut down) or a blocking call on an I/O thread.
    #[error(transparent)]
    Runtime(#[from] pvloom_core::Error),
}

/// A message as the application sees it: the received message plus its slot.
#[derive(Clone)]
pub struct Message {
    /// Its identity.
    pub identity: Identity,
    /// The sender's serial.
    pub serial: u32,
    /// The sending node's identity.
    pub remote_identity: Identity,
    /// The sender's address.
    pub address: IpAddr,
    /// The sender's public port.
    pub port: u16,
    /// Upper-layer header bytes.
    pub header: Bytes,
    /// The data.
    pub data: Bytes,
    slot: Arc<Mutex<Option<SlotRef>>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("identity", &self.identity)
            .field("serial", &self.serial)
            .field("from", &SocketAddr::new(self.address, self.port))
            .field("data_len", &self.data.len())
            .field("has_slot", &self.has_slot())
            .finish()
    }
}

struct SlotRef {
    address: Arc<StreamAddress<ConnApp>>,
    slot: SlotId,
}

impl Message {
    fn new(received: Received, address: Option<Arc<StreamAddress<ConnApp>>>) -> Self {
        let slot = address.map(|address| SlotRef { address, slot: received.slot });
        Message {
            identity: received.identity,
            serial: received.serial,
            remote_identity: received.remote_identity,
            address: received.from.ip(),
            port: received.from.port(),
            header: received.header,
            data: received.data,
            slot: Arc::new(Mutex::new(slot)),
        }
    }

    /// Where it came from (the sender's public port): where a reply goes.
    pub fn from(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }

    /// True until released.
    pub fn has_slot(&self) -> bool {
        self.slot.lock().is_some()
    }

    /// A reply: same identity, new data.
    pub fn reply(&self, data: impl Into<Bytes>) -> Outgoing {
        Outgoing { identity: self.identity, header: Bytes::new(), data: data.into() }
    }

    /// Free its slot (and, if the sender asked for one, send the ACK that completes
    /// the sender's synchronous send). Resolves to (identity, serial), or `None` if it
    /// had no slot (released before, or its connection is gone).
    pub fn release(&self) -> Completion<Option<(Identity, u32)>> {
        let Some(slot) = self.slot.lock().take() else {
            return Completion::ready(Ok(None));
        };
        let (done, wait) = pvloom_core::completion();
        let done = Arc::new(Mutex::new(Some(done)));
        let fallback = done.clone();
        let id = slot.slot;
        slot.address.exec(
            move |app, ctx| {
                let released = app.conn.inner_mut().release(ctx.now(), id).ok().map(|r| (r.identity, r.serial));
                if let Some(done) = done.lock().take() {
                    done.succeed(released);
                }
            },
            move || {
                if let Some(done) = fallback.lock().take() {
                    done.succeed(None);
                }
            },
        );
        wait
    }
}

type Handler = Arc<dyn Fn(Message) + Send + Sync>;
/// A send's completion.
pub type SendCompletion = Completion<Result<(), ChirpError>>;
/// A request's answer.
pub type AnswerCompletion = Completion<Result<Message, ChirpError>>;
type SendDone = Completer<Result<(), ChirpError>>;
type ReplyDone = Completer<Result<Message, ChirpError>>;

#[derive(Default)]
struct State {
    conns: HashMap<u64, Arc<StreamAddress<ConnApp>>>,
    /// Connections whose handshake is done, by remote.
    ready: HashSet<u64>,
    connecting: HashSet<RemoteKey>,
    pending: HashMap<RemoteKey, VecDeque<(SendToken, Outgoing)>>,
    sends: HashMap<SendToken, SendDone>,
    requests: HashMap<Identity, ReplyDone>,
    listener: Option<(usize, Token)>,
    gc: Option<pvloom_core::TimerHandle>,
}

struct Node {
    runtime: RuntimeHandle,
    limits: Limits,
    local: Handshake,
    auto_release: bool,
    /// Set unless DISABLE_ENCRYPTION; used for the connections [`encrypts`] picks.
    tls: Option<TlsContext>,
    always_encrypt: bool,
    keepalive: Duration,
    handler: Handler,
    table: Mutex<RemoteTable<u64>>,
    state: Mutex<State>,
    next_id: AtomicU64,
    stopping: AtomicBool,
    stats: Counters,
}

/// A chirp node. Dropping it stops it.
pub struct Chirp {
    node: Arc<Node>,
}

impl Chirp {
    /// Start a node: listen on `config`'s address and port (0: a free one), and call
    /// `handler` for every message (through the runtime's delivery, in order per
    /// connection). With `auto_release` the slot is freed when the handler returns.
    ///
    /// # Errors
    /// The configuration is refused or the port cannot be bound.
    pub fn start(
        runtime: &RuntimeHandle,
        config: &Config,
        handler: impl Fn(Message) + Send + Sync + 'static,
    ) -> Result<Chirp, ChirpError> {
        let limits = config.limits()?;
        let tls = config.tls_context()?;
        let identity = config.identity.filter(|i| !i.is_zero()).unwrap_or_else(Identity::random);
        let listener = driver::bind_tcp(SocketAddr::new(IpAddr::V4(config.bind_v4), config.port))
            .map_err(|e| ChirpError::Listen(e.to_string()))?;
        let port = listener.local_addr().map_err(|e| ChirpError::Listen(e.to_string()))?.port();
        let node = Arc::new(Node {
            runtime: runtime.clone(),
            limits,
            local: Handshake { port, identity },
            auto_release: config.auto_release,
            tls,
            always_encrypt: config.always_encrypt,
            keepalive: crate::config::TCP_KEEPALIVE,
            handler: Arc::new(handler),
            table: Mutex::new(RemoteTable::new(runtime.now(), limits, fastrand::Rng::new())),
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            stats: Counters::default(),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = runtime.least_loaded_thread();
        let weak = Arc::downgrade(&node);
        runtime.run_on(thread, move |ctx| {
            let accept = move |stream, peer: SocketAddr, ctx: &mut IoCtx<'_>| {
                if let Some(node) = weak.upgrade() {
                    node.accept(stream, peer, ctx);
                }
            };
            let _ = tx.send(ctx.register(Box::new(Listener::new(listener, accept))));
        })?;
        let token = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| ChirpError::Listen(e.to_string()))?
            .map_err(|e| ChirpError::Listen(e.to_string()))?;
        // The remote table's GC: remotes idle longer than the reuse time are forgotten
        // (their connection closed), so a node that talked to many peers once does
        // not keep them all. Its period is the table's (half the reuse time plus a
        // random part); the runtime timer only looks that often.
        let weak = Arc::downgrade(&node);
        let gc = runtime.call_every(limits.reuse_time / 4, move || {
            if let Some(node) = weak.upgrade() {
                node.collect();
            }
        });
        let mut state = node.state.lock();
        state.listener = Some((thread, token));
        state.gc = Some(gc);
        drop(state);
        tracing::info!(port, %identity, "chirp node listening");
        Ok(Chirp { node })
    }

    /// The node's identity (sent in every handshake).
    pub fn identity(&self) -> Identity {
        self.node.local.identity
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.node.local.port
    }

    /// The node's counters: connections, reconnects, and the asynchronous sends that
    /// may have been lost with a connection that died.
    pub fn stats(&self) -> NodeStats {
        self.node.stats.snapshot()
    }

    /// Send `message` to the node listening at `to`. Resolves when the OS took it
    /// (asynchronous mode) or when the remote released it (synchronous mode).
    pub fn send(&self, to: SocketAddr, message: Outgoing) -> Completion<Result<(), ChirpError>> {
        let (done, wait) = self.node.runtime.completion("chirp send");
        self.node.clone().submit(RemoteKey::from(to), message, done);
        wait
    }

    /// [`send`](Self::send) and wait for it, at most TIMEOUT plus the connect timeout.
    ///
    /// # Errors
    /// As the send, a timeout, or `WouldDeadlock` on an I/O thread.
    pub fn send_wait(&self, to: SocketAddr, message: Outgoing) -> Result<(), ChirpError> {
        pvloom_core::ensure_may_block()?;
        let limit = self.node.limits.timeout + self.node.limits.connect_timeout;
        self.send(to, message).wait_timeout(limit)?
    }

    /// Send `message` and resolve the second completion with the answer (a message
    /// with the same identity), or [`ChirpError::NoAnswer`] after TIMEOUT. The answer's
    /// slot is released at once. The first completion is the send's.
    pub fn request(&self, to: SocketAddr, message: Outgoing) -> (SendCompletion, AnswerCompletion) {
        let (answer, answer_wait) = self.node.runtime.completion("chirp answer");
        let identity = message.identity;
        // Registered before the send: the answer cannot arrive before its entry.
        self.node.state.lock().requests.insert(identity, answer);
        let timeout = self.node.limits.timeout;
        let weak = Arc::downgrade(&self.node);
        self.node.runtime.call_later(timeout, move || {
            // Completed after the lock is dropped: an inline `then` may call the node.
            let answer = weak.upgrade().and_then(|node| node.state.lock().requests.remove(&identity));
            if let Some(answer) = answer {
                answer.succeed(Err(ChirpError::NoAnswer(timeout)));
            }
        });
        (self.send(to, message), answer_wait)
    }

    /// Stop: no more listening, every connection closed, everything waiting failed
    /// with [`ChirpError::Stopped`]. Also done on drop.
    pub fn stop(&self) {
        self.node.stop();
    }
}

impl Drop for Chirp {
    fn drop(&mut self) {
        self.node.stop();
    }
}

impl Node {
    fn now(&self) -> Instant {
        self.runtime.now()
    }

    fn submit(self: Arc<Self>, key: RemoteKey, message: Outgoing, done: SendDone) {
        if self.stopping.load(Ordering::Acquire) {
            return done.succeed(Err(ChirpError::Stopped));
        }
        if message.body_len() > u64::from(self.limits.max_msg_size) {
            let error = SendError::TooLarge { size: message.body_len(), limit: u64::from(self.limits.max_msg_size) };
            return done.succeed(Err(error.into()));
        }
        let token = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let mut table = self.table.lock();
        table.touch(now, key);
        let mut state = self.state.lock();
        let queue = state.pending.entry(key).or_default();
        if queue.len() >= self.limits.max_queued {
            let error = SendError::QueueFull { queued: queue.len(), bytes: 0 };
            drop(state);
            return done.succeed(Err(error.into()));
        }
        queue.push_back((token, message));
        state.sends.insert(token, done);
        let ready = table.connection(&key).copied().filter(|id| state.ready.contains(id));
        if let Some(id) = ready {
            if let Some(address) = state.conns.get(&id).cloned() {
                drop(state);
                drop(table);
                // The connection takes what it can from the queue on its thread.
                address.exec(|app, ctx| app.take_pending(ctx.now()), || {});
            }
            return;
        }
        let blocked = table.blocked_until(&key, now).is_some();
        if !blocked && state.connecting.insert(key) {
            drop(state);
            self.connect(&mut table, key);
        }
    }

    fn connect(self: &Arc<Self>, table: &mut RemoteTable<u64>, key: RemoteKey) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let address = StreamAddress::<ConnApp>::new(self.runtime.clone(), self.runtime.least_loaded_thread());
        if table.lost_one(&key) {
            self.stats.reconnect();
        }
        table.connecting(self.now(), key, id);
        self.state.lock().conns.insert(id, address.clone());
        let node = self.clone();
        let config = self.stream_config();
        let thread = address.thread();
        let started = self.runtime.run_on(thread, move |ctx| {
            let app = ConnApp::new(&node, id, Some(key), key.addr, false, ctx, &address);
            if let Err(e) = driver::connect(ctx, &address, key.socket_addr(), config, app) {
                tracing::debug!(remote = %key.socket_addr(), "chirp connect failed at once: {e}");
                node.connection_gone(ctx.now(), id, Some(key), false, &CloseReason::Io(e.to_string()));
            }
        });
        if started.is_err() {
            self.state.lock().conns.remove(&id);
        }
    }

    /// `conn` over TLS if libchirp's rule says this peer is encrypted. A session
    /// OpenSSL cannot make leaves the connection to fail its handshake, closed.
    fn secure(&self, conn: Connection, peer: IpAddr, accepted: bool) -> Secured<Connection> {
        let Some(context) = self.tls.as_ref().filter(|_| encrypts(peer, false, self.always_encrypt)) else {
            return Secured::plain(conn);
        };
        match context.session(accepted) {
            Ok(session) => Secured::encrypted(conn, session),
            Err(e) => {
                tracing::warn!(%peer, "no TLS session: {e}");
                let mut conn = conn;
                conn.close(CloseReason::Local(format!("no TLS session: {e}")));
                Secured::plain(conn)
            }
        }
    }

    fn stream_config(&self) -> StreamConfig {
        StreamConfig {
            connect_timeout: Some(self.limits.connect_timeout),
            read_chunk: self.limits.buffer_size as usize,
            nodelay: true,
            keepalive: Some(self.keepalive),
            ..StreamConfig::default()
        }
    }

    fn accept(self: &Arc<Self>, stream: pvloom_core::mio::net::TcpStream, peer: SocketAddr, ctx: &mut IoCtx<'_>) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let Some(runtime) = ctx.runtime() else { return };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let address = StreamAddress::<ConnApp>::new(runtime.clone(), runtime.least_loaded_thread());
        self.state.lock().conns.insert(id, address.clone());
        let node = self.clone();
        let config = self.stream_config();
        let _ = runtime.run_on(address.thread(), move |ctx| {
            let app = ConnApp::new(&node, id, None, peer.ip(), true, ctx, &address);
            if let Err(e) = driver::adopt(ctx, &address, stream, config, app) {
                tracing::warn!(%peer, "cannot register a chirp connection: {e}");
                node.state.lock().conns.remove(&id);
            }
        });
    }

    /// `id` closed (or never opened). Requeued messages wait for the reconnect.
    fn connection_gone(
        self: &Arc<Self>,
        now: Instant,
        id: u64,
        key: Option<RemoteKey>,
        handshaken: bool,
        reason: &CloseReason,
    ) {
        let mut table = self.table.lock();
        let mut state = self.state.lock();
        state.conns.remove(&id);
        state.ready.remove(&id);
        let Some(key) = key else { return };
        state.connecting.remove(&key);
        let until = table.connection_lost(now, &key, &id);
        // A connect that failed fails one waiting message, as libchirp does: a dead
        // remote drains its queue one block at a time instead of holding it forever.
        let failed = (!handshaken)
            .then(|| state.pending.get_mut(&key).and_then(VecDeque::pop_front))
            .flatten()
            .and_then(|(token, _)| state.sends.remove(&token));
        // A connection that no longer served the remote (replaced in a race) gave back
        // what it had queued: the one serving it now takes that, or nothing would until
        // its next send.
        let successor = table
            .connection(&key)
            .filter(|c| state.ready.contains(c) && state.pending.get(&key).is_some_and(|q| !q.is_empty()))
            .and_then(|c| state.conns.get(c).cloned());
        drop(state);
        drop(table);
        if let Some(address) = successor {
            address.exec(|app, ctx| app.take_pending(ctx.now()), || {});
        }
        // Armed whether or not messages wait now: one sent during the block (`submit`
        // leaves a blocked remote alone) is taken up when it ends; `reconnect` checks.
        // Armed before the failure below is reported, so whoever sees the failure (a
        // test moving virtual time) finds the timer already queued.
        if let (Some(until), false) = (until, self.stopping.load(Ordering::Acquire)) {
            let weak = Arc::downgrade(self);
            self.runtime.call_later(until.saturating_duration_since(now), move || {
                if let Some(node) = weak.upgrade() {
                    node.reconnect(key);
                }
            });
        }
        // After the locks: an inline `then` may call the node (send again).
        if let Some(done) = failed {
            done.succeed(Err(SendFailure::ConnectionLost(reason.to_string()).into()));
        }
    }

    fn reconnect(self: &Arc<Self>, key: RemoteKey) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let mut table = self.table.lock();
        let now = self.now();
        if table.connection(&key).is_some() || table.blocked_until(&key, now).is_some() {
            return;
        }
        let mut state = self.state.lock();
        let waiting = state.pending.get(&key).is_some_and(|q| !q.is_empty());
        if waiting && state.connecting.insert(key) {
            drop(state);
            self.connect(&mut table, key);
        }
    }

    fn collect(&self) {
        let now = self.now();
        let events = self.table.lock().handle_timeout(now);
        for event in events {
            let crate::remote::TableEvent::Collected(key, conn) = event else { continue };
            tracing::debug!(remote = %key.socket_addr(), "chirp remote idle, collected");
            let mut state = self.state.lock();
            let waiting = state.pending.remove(&key).unwrap_or_default();
            let failed: Vec<_> = waiting.into_iter().filter_map(|(token, _)| state.sends.remove(&token)).collect();
            let address = conn.and_then(|id| state.conns.get(&id).cloned());
            drop(state);
            for done in failed {
                done.succeed(Err(SendFailure::NotSent("remote collected while idle".into()).into()));
            }
            if let Some(address) = address {
                address.exec(
                    |app, _| app.conn.inner_mut().close(CloseReason::Local("remote idle, collected".into())),
                    || {},
                );
            }
        }
    }

    fn stop(&self) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut state = self.state.lock();
        if let Some(gc) = state.gc.take() {
            gc.cancel();
        }
        if let Some((thread, token)) = state.listener.take() {
            let _ = self.runtime.run_on(thread, move |ctx| drop(ctx.deregister(token)));
        }
        let conns: Vec<_> = state.conns.values().cloned().collect();
        let sends: Vec<_> = state.sends.drain().map(|(_, done)| done).collect();
        let requests: Vec<_> = state.requests.drain().map(|(_, done)| done).collect();
        state.pending.clear();
        drop(state);
        for address in conns {
            address.exec(|app, _| app.conn.inner_mut().close(CloseReason::Local("chirp node stopped".into())), || {});
        }
        for done in sends {
            done.succeed(Err(ChirpError::Stopped));
        }
        for done in requests {
            done.succeed(Err(ChirpError::Stopped));
        }
    }
}

/// One connection's application layer, on its I/O thread.
struct ConnApp {
    conn: Secured<Connection>,
    node: Arc<Node>,
    id: u64,
    /// The remote: known at once for a connection we opened, from the handshake for
    /// one we accepted.
    key: Option<RemoteKey>,
    handshaken: bool,
    address: Arc<StreamAddress<ConnApp>>,
    deliverer: Deliverer,
    /// Messages given back to the node's queue so far (they come oldest first).
    requeued: usize,
}

impl ConnApp {
    fn new(
        node: &Arc<Node>,
        id: u64,
        key: Option<RemoteKey>,
        peer: IpAddr,
        accepted: bool,
        ctx: &IoCtx<'_>,
        address: &Arc<StreamAddress<ConnApp>>,
    ) -> Self {
        ConnApp {
            conn: node.secure(Connection::new(ctx.now(), node.local, peer, node.limits), peer, accepted),
            node: node.clone(),
            id,
            key,
            handshaken: false,
            address: address.clone(),
            deliverer: node.runtime.deliverer(),
            requeued: 0,
        }
    }

    /// Move what the connection's queue holds room for from the node's queue.
    fn take_pending(&mut self, now: Instant) {
        let Some(key) = self.key.filter(|_| self.handshaken) else { return };
        let mut batch = Vec::new();
        {
            let mut state = self.node.state.lock();
            let Some(queue) = state.pending.get_mut(&key) else { return };
            let mut room = self.node.limits.max_queued.saturating_sub(self.conn.inner().queued());
            while room > 0 {
                let Some((token, message)) = queue.pop_front() else { break };
                batch.push((token, message));
                room -= 1;
            }
        }
        for (token, message) in batch {
            if let Err(error) = self.conn.inner_mut().send(now, token, message) {
                // Completed after the lock is dropped: an inline `then` may call the node.
                let done = self.node.state.lock().sends.remove(&token);
                if let Some(done) = done {
                    done.succeed(Err(error.into()));
                }
            }
        }
    }

    fn complete(&self, token: SendToken, result: Result<(), ChirpError>) {
        let done = self.node.state.lock().sends.remove(&token);
        if let Some(done) = done {
            done.succeed(result);
        }
    }
}

impl StreamApp for ConnApp {
    type Endpoint = Secured<Connection>;

    fn endpoint(&mut self) -> &mut Secured<Connection> {
        &mut self.conn
    }

    fn on_event(&mut self, event: ConnEvent, ctx: &mut IoCtx<'_>) {
        let now = ctx.now();
        match event {
            ConnEvent::Handshake(handshake) => {
                let key = *self.key.get_or_insert(RemoteKey::new(self.conn_peer_ip(), handshake.port));
                self.handshaken = true;
                let replaced = self.node.table.lock().handshake(now, key, self.id);
                {
                    let mut state = self.node.state.lock();
                    state.ready.insert(self.id);
                    state.connecting.remove(&key);
                }
                // Counted once it serves the remote: whoever sees the count can use it.
                self.node.stats.opened();
                if let Some(old) = replaced {
                    // The older connection stays open until idle (libchirp leaves it
                    // to the GC); new messages take this one.
                    tracing::debug!(remote = %key.socket_addr(), old, new = self.id, "chirp connection replaced");
                }
                self.take_pending(now);
            }
            ConnEvent::Received(received) => {
                if let Some(key) = self.key {
                    self.node.table.lock().touch(now, key);
                }
                let answer = self.node.state.lock().requests.remove(&received.identity);
                if let Some(answer) = answer {
                    let _ = self.conn.inner_mut().release(now, received.slot);
                    answer.succeed(Ok(Message::new(received, None)));
                    return;
                }
                let message = Message::new(received, Some(self.address.clone()));
                let handler = self.node.handler.clone();
                let auto_release = self.node.auto_release;
                let _ = self.node.runtime.deliver(&self.deliverer, "chirp handler", move || {
                    handler(message.clone());
                    if auto_release {
                        drop(message.release());
                    }
                });
            }
            ConnEvent::Sent { token, .. } => {
                self.complete(token, Ok(()));
                self.take_pending(now);
            }
            ConnEvent::Failed { token, error: SendFailure::NotSent(_), message }
                if !self.node.stopping.load(Ordering::Acquire) && self.key.is_some() =>
            {
                // Not begun: it waits for the next connection, before what the node still
                // queues but after the ones given back before it (pushing each to the
                // front reversed them).
                if let Some(key) = self.key {
                    let mut state = self.node.state.lock();
                    let queue = state.pending.entry(key).or_default();
                    queue.insert(self.requeued.min(queue.len()), (token, message));
                    self.requeued += 1;
                }
            }
            ConnEvent::Failed { token, error, .. } => self.complete(token, Err(error.into())),
        }
    }

    fn on_closed(&mut self, reason: &CloseReason, ctx: &mut IoCtx<'_>) {
        tracing::debug!(conn = self.id, "chirp connection closed: {reason}");
        let unconfirmed = self.conn.inner().unconfirmed();
        self.node.stats.closed(self.conn_peer_ip(), self.key.map(|k| k.port), reason, unconfirmed);
        self.node.connection_gone(ctx.now(), self.id, self.key, self.handshaken, reason);
    }
}

impl ConnApp {
    fn conn_peer_ip(&self) -> IpAddr {
        self.conn.inner().peer_ip()
    }
}
