//! [`Chirp`]: a chirp node on pvloom's shared driver: a listener, one connection per
//! remote (either side may open it), a bounded send queue per remote, and the send,
//! request and release operations in their non-blocking (a [`Completion`]) and
//! blocking (the same plus a wait) forms.
//!
//! Messages for a remote wait in its outbox until a connection to it has finished
//! its handshake; that connection then takes as many as its own bounded queue holds,
//! and more each time one completes (so a busy connection is never woken per
//! message). A connection that fails gives back
//! what it had not begun to write; the remote is blocked for 50–550 ms, then
//! connected again if messages wait. A connect that fails fails one waiting message
//! (as libchirp does), so a dead remote drains its queue instead of retrying forever.
//!
//! Departure from libchirp: `request` registers for the answer before the request is
//! sent, so an answer cannot arrive unmatched (libchirp's Python pool loses some).

mod conn_app;
mod message;
mod outbox;
mod requests;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pvloom_core::driver::{self, Listener, StreamAddress, StreamConfig};
use pvloom_core::mio::Token;
use pvloom_core::{CloseReason, Completion, IoCtx, RuntimeHandle};

use self::conn_app::ConnApp;
pub use self::message::Message;
use self::outbox::{Drainer, Outbox, Pending, Pushed, SendDone};
use self::requests::Requests;
use crate::config::{Config, Limits};
use crate::conn::{Connection, SendToken};
use crate::error::{ConfigError, SendError, SendFailure};
use crate::identity::Identity;
use crate::message::Outgoing;
use crate::remote::{RemoteKey, RemoteTable};
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

type Handler = Arc<dyn Fn(Message) + Send + Sync>;
/// A send's completion.
pub type SendCompletion = Completion<Result<(), ChirpError>>;
/// A request's answer.
pub type AnswerCompletion = Completion<Result<Message, ChirpError>>;

#[derive(Default)]
struct State {
    conns: HashMap<u64, Arc<StreamAddress<ConnApp>>>,
    connecting: HashSet<RemoteKey>,
    /// Remotes with a reconnect timer running (their block ends then).
    reconnecting: HashSet<RemoteKey>,
    outboxes: foldhash::HashMap<RemoteKey, Arc<Outbox>>,
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
    /// Where send completions' callbacks go: one source for the node, in order (a
    /// source per completion would cost an allocation per send).
    completions: pvloom_core::Deliverer,
    /// Lock order: `table`, then `state`, then an outbox; `requests` alone. No
    /// completion is completed while one is held (its callback may call the node).
    table: Mutex<RemoteTable<u64>>,
    state: Mutex<State>,
    requests: Mutex<Requests>,
    /// Requests waiting (kept with `requests`): a received message looks there only
    /// when some wait.
    requests_open: AtomicUsize,
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
            completions: runtime.deliverer(),
            table: Mutex::new(RemoteTable::new(runtime.now(), limits, fastrand::Rng::new())),
            state: Mutex::new(State::default()),
            requests: Mutex::new(Requests::default()),
            requests_open: AtomicUsize::new(0),
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
        let (done, wait) = pvloom_core::completion_with(self.node.completions.clone(), "chirp send");
        self.node.submit(RemoteKey::from(to), message, done);
        wait
    }

    /// [`send`](Self::send) and wait for it, at most TIMEOUT plus the connect timeout.
    ///
    /// # Errors
    /// As [`send_wait_timeout`](Self::send_wait_timeout).
    pub fn send_wait(&self, to: SocketAddr, message: Outgoing) -> Result<(), ChirpError> {
        self.send_wait_timeout(to, message, self.node.limits.timeout + self.node.limits.connect_timeout)
    }

    /// [`send`](Self::send) and wait at most `limit`. A send still waiting for its
    /// turn then is withdrawn, so a caller that tries again cannot deliver it twice.
    ///
    /// # Errors
    /// As the send; on timeout [`SendFailure::NotSent`] if it was withdrawn (never
    /// written: safe to send again), [`SendFailure::TimedOut`] if it was already being
    /// written or awaited its ACK (it may still arrive); `WouldDeadlock` on an I/O
    /// thread.
    pub fn send_wait_timeout(&self, to: SocketAddr, message: Outgoing, limit: Duration) -> Result<(), ChirpError> {
        pvloom_core::ensure_may_block()?;
        let key = RemoteKey::from(to);
        let (done, wait) = pvloom_core::completion_with(self.node.completions.clone(), "chirp send");
        let Some(token) = self.node.submit(key, message, done) else {
            return wait.wait()?;
        };
        match wait.poll_wait(Some(Instant::now() + limit)) {
            Ok(result) => result?,
            Err(wait) => {
                if self.node.withdraw(key, token) {
                    return Err(SendFailure::NotSent(format!("not sent within {limit:?}; withdrawn")).into());
                }
                // Completed meanwhile (the race with the deadline): that is the answer.
                match wait.poll_wait(Some(Instant::now())) {
                    Ok(result) => result?,
                    Err(_) => Err(SendFailure::TimedOut(limit).into()),
                }
            }
        }
    }

    /// Send `message` and resolve the second completion with the answer (a message
    /// with the same identity), or [`ChirpError::NoAnswer`] after TIMEOUT. The answer's
    /// slot is released at once. The first completion is the send's.
    pub fn request(&self, to: SocketAddr, message: Outgoing) -> (SendCompletion, AnswerCompletion) {
        let (answer, answer_wait) = pvloom_core::completion_with(self.node.completions.clone(), "chirp answer");
        let identity = message.identity;
        // Registered before the send: the answer cannot arrive before its entry.
        let timeout = self.node.limits.timeout;
        let mut requests = self.node.requests.lock();
        let older = requests.insert(identity, answer, self.node.now() + timeout);
        self.node.requests_open.store(requests.len(), Ordering::Release);
        let arm = !std::mem::replace(&mut requests.timer_armed, true);
        drop(requests);
        if let Some(older) = older {
            // The same identity asked twice: the older request can get no answer.
            older.succeed(Err(ChirpError::NoAnswer(Duration::ZERO)));
        }
        if arm {
            self.node.arm_request_timer(timeout);
        }
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

    /// Fail the requests due by the time `after` has passed, then look again at the
    /// next deadline.
    fn arm_request_timer(self: &Arc<Self>, after: Duration) {
        let weak = Arc::downgrade(self);
        self.runtime.call_later(after, move || {
            let Some(node) = weak.upgrade() else { return };
            let now = node.now();
            let mut requests = node.requests.lock();
            let (expired, next) = requests.expire(now);
            node.requests_open.store(requests.len(), Ordering::Release);
            requests.timer_armed = next.is_some();
            drop(requests);
            let timeout = node.limits.timeout;
            for done in expired {
                done.succeed(Err(ChirpError::NoAnswer(timeout)));
            }
            if let Some(next) = next {
                node.arm_request_timer(next.saturating_duration_since(now));
            }
        });
    }

    /// Queue a send; its token, or `None` when it was completed at once (refused).
    fn submit(self: &Arc<Self>, key: RemoteKey, message: Outgoing, done: SendDone) -> Option<SendToken> {
        if self.stopping.load(Ordering::Acquire) {
            done.succeed(Err(ChirpError::Stopped));
            return None;
        }
        if message.body_len() > u64::from(self.limits.max_msg_size) {
            let error = SendError::TooLarge { size: message.body_len(), limit: u64::from(self.limits.max_msg_size) };
            done.succeed(Err(error.into()));
            return None;
        }
        let token = self.next_id.fetch_add(1, Ordering::Relaxed);
        let outbox = self.state.lock().outboxes.entry(key).or_default().clone();
        match outbox.push(Pending { token, message, done }, self.limits.max_queued) {
            Pushed::Queued => Some(token),
            Pushed::NeedsConnection => {
                self.ensure_connection(key, &outbox);
                Some(token)
            }
            Pushed::Full(done, queued) => {
                done.succeed(Err(SendError::QueueFull { queued, bytes: 0 }.into()));
                None
            }
        }
    }

    /// Take back the send `token` if it has not begun: from the outbox, or from the
    /// queue of the connection serving the remote. True if it was withdrawn (its
    /// completer is dropped; the caller stopped waiting).
    fn withdraw(&self, key: RemoteKey, token: SendToken) -> bool {
        let Some(outbox) = self.state.lock().outboxes.get(&key).cloned() else { return false };
        let mut boxed = outbox.state.lock();
        if let Some(at) = boxed.queue.iter().position(|p| p.token == token) {
            let pending = boxed.queue.remove(at);
            drop(boxed);
            drop(pending);
            return true;
        }
        let Some(address) = boxed.drainer.as_ref().map(|d| d.address.clone()) else { return false };
        drop(boxed);
        let (tx, rx) = std::sync::mpsc::channel();
        let reached = address.exec(
            move |app, ctx| {
                let _ = tx.send(app.withdraw(token, ctx.now()));
            },
            || {},
        );
        // The I/O thread answers within a loop turn; a connection gone answers nothing.
        reached && rx.recv_timeout(Duration::from_secs(1)).unwrap_or(false)
    }

    /// Messages wait for `key` and no connection serves it: open one, or let the
    /// reconnect timer do it when the remote is blocked.
    fn ensure_connection(self: &Arc<Self>, key: RemoteKey, outbox: &Outbox) {
        let now = self.now();
        let mut table = self.table.lock();
        table.touch(now, key);
        let mut state = self.state.lock();
        // A handshake may have attached a drainer meanwhile; it took the message.
        if outbox.state.lock().drainer.is_some() || state.connecting.contains(&key) {
            return;
        }
        if let Some(until) = table.blocked_until(&key, now) {
            drop(state);
            drop(table);
            return self.reconnect_at(key, now, until);
        }
        state.connecting.insert(key);
        drop(state);
        self.connect(&mut table, key);
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
            // Stopped since: its close may have come before the connection existed.
            if node.stopping.load(Ordering::Acquire) {
                node.connection_gone(
                    ctx.now(),
                    id,
                    Some(key),
                    false,
                    &CloseReason::Local("chirp node stopped".into()),
                    Vec::new(),
                );
                return;
            }
            let app = ConnApp::new(&node, id, Some(key), key.addr, false, ctx, &address);
            if let Err(e) = driver::connect(ctx, &address, key.socket_addr(), config, app) {
                tracing::debug!(remote = %key.socket_addr(), "chirp connect failed at once: {e}");
                node.connection_gone(ctx.now(), id, Some(key), false, &CloseReason::Io(e.to_string()), Vec::new());
            }
        });
        if started.is_err() {
            let mut state = self.state.lock();
            state.conns.remove(&id);
            state.connecting.remove(&key);
        }
    }

    /// A connection to `key` finished its handshake: it drains the remote's outbox
    /// from now on.
    fn attach_drainer(&self, key: RemoteKey, id: u64, address: &Arc<StreamAddress<ConnApp>>) -> Arc<Outbox> {
        let mut state = self.state.lock();
        state.connecting.remove(&key);
        let outbox = state.outboxes.entry(key).or_default().clone();
        let mut boxed = outbox.state.lock();
        boxed.drainer = Some(Drainer { id, address: address.clone() });
        // The new drainer drains at once (its caller does): nothing else is due.
        boxed.drain_due = true;
        drop(boxed);
        outbox
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
            // Stopped since: its close may have come before the connection existed.
            if node.stopping.load(Ordering::Acquire) {
                node.state.lock().conns.remove(&id);
                return;
            }
            let app = ConnApp::new(&node, id, None, peer.ip(), true, ctx, &address);
            if let Err(e) = driver::adopt(ctx, &address, stream, config, app) {
                tracing::warn!(%peer, "cannot register a chirp connection: {e}");
                node.state.lock().conns.remove(&id);
            }
        });
    }

    /// `id` closed (or never opened). `requeue` (sends it had not begun) waits for
    /// the reconnect, first in line.
    fn connection_gone(
        self: &Arc<Self>,
        now: Instant,
        id: u64,
        key: Option<RemoteKey>,
        handshaken: bool,
        reason: &CloseReason,
        requeue: Vec<Pending>,
    ) {
        let mut table = self.table.lock();
        let mut state = self.state.lock();
        state.conns.remove(&id);
        let Some(key) = key else { return };
        if !handshaken {
            state.connecting.remove(&key);
        }
        let until = table.connection_lost(now, &key, &id);
        let outbox = state.outboxes.get(&key).cloned();
        drop(state);
        drop(table);
        let Some(outbox) = outbox else {
            // Forgotten meanwhile (collected, or the node stopped): nobody waits.
            return fail_all(requeue, || SendFailure::ConnectionLost(reason.to_string()).into());
        };
        outbox.requeue_front(requeue);
        let mut boxed = outbox.state.lock();
        if boxed.drainer.as_ref().is_some_and(|d| d.id == id) {
            boxed.drainer = None;
            boxed.drain_due = false;
        }
        // A connect that failed fails one waiting message, as libchirp does: a dead
        // remote drains its queue one block at a time instead of holding it forever.
        // Not when another connection (one the remote opened) serves it meanwhile.
        let failed = if handshaken || boxed.drainer.is_some() { None } else { boxed.queue.pop_front() };
        // A connection replaced in a race gave back what it had queued: the one serving
        // the remote now takes it, or nothing would until its next completion.
        let waiting = !boxed.queue.is_empty();
        let successor = boxed.drainer.as_ref().map(|d| d.address.clone());
        let wake_successor = waiting && successor.is_some() && !std::mem::replace(&mut boxed.drain_due, true);
        drop(boxed);
        // Nobody will connect for what waits (the closed connection was not the one
        // the table knew, so no block was set): connect now.
        let until = until.or((waiting && successor.is_none()).then_some(now));
        let successor = successor.filter(|_| wake_successor);
        if let Some(address) = successor {
            address.exec(|app, ctx| app.drain(ctx.now()), || {});
        }
        // Armed whether or not messages wait now (`reconnect` looks): one sent during
        // the block is taken up when it ends. Armed before the failure below is
        // reported, so whoever sees the failure (a test moving virtual time) finds the
        // timer queued.
        if let Some(until) = until
            && !self.stopping.load(Ordering::Acquire)
        {
            self.reconnect_at(key, now, until);
        }
        if let Some(pending) = failed {
            pending.done.succeed(Err(SendFailure::ConnectionLost(reason.to_string()).into()));
        }
    }

    /// Connect to `key` again at `until` (once per remote, however many ask).
    fn reconnect_at(self: &Arc<Self>, key: RemoteKey, now: Instant, until: Instant) {
        if !self.state.lock().reconnecting.insert(key) {
            return;
        }
        let weak = Arc::downgrade(self);
        self.runtime.call_later(until.saturating_duration_since(now), move || {
            if let Some(node) = weak.upgrade() {
                node.state.lock().reconnecting.remove(&key);
                node.reconnect(key);
            }
        });
    }

    fn reconnect(self: &Arc<Self>, key: RemoteKey) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let outbox = self.state.lock().outboxes.get(&key).cloned();
        let Some(outbox) = outbox else { return };
        if outbox.state.lock().queue.is_empty() {
            return;
        }
        self.ensure_connection(key, &outbox);
    }

    fn collect(&self) {
        let now = self.now();
        let events = self.table.lock().handle_timeout(now);
        for event in events {
            let crate::remote::TableEvent::Collected(key, conn) = event else { continue };
            tracing::debug!(remote = %key.socket_addr(), "chirp remote idle, collected");
            let mut state = self.state.lock();
            let outbox = state.outboxes.remove(&key);
            let address = conn.and_then(|id| state.conns.get(&id).cloned());
            drop(state);
            if let Some(outbox) = outbox {
                fail_all(outbox.take_all(), || SendFailure::NotSent("remote collected while idle".into()).into());
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
        let outboxes: Vec<_> = state.outboxes.drain().map(|(_, outbox)| outbox).collect();
        drop(state);
        let requests = self.requests.lock().take_all();
        self.requests_open.store(0, Ordering::Release);
        for address in conns {
            address.exec(|app, _| app.conn.inner_mut().close(CloseReason::Local("chirp node stopped".into())), || {});
        }
        for outbox in outboxes {
            fail_all(outbox.take_all(), || ChirpError::Stopped);
        }
        for done in requests {
            done.succeed(Err(ChirpError::Stopped));
        }
    }
}

fn fail_all(sends: Vec<Pending>, error: impl Fn() -> ChirpError) {
    for pending in sends {
        pending.done.succeed(Err(error()));
    }
}
