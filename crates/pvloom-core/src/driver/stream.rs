//! The TCP connection driver.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::address::{Address, Driven};
use super::deadline::Deadline;
use crate::endpoint::{CloseReason, StreamEndpoint};
use crate::runtime::{IoCtx, IoHandler, Keep};

/// The protocol's layer above its endpoint, on the connection's I/O thread: turns
/// endpoint events into callbacks, completions and calls on other connections.
pub trait StreamApp: Send + 'static {
    /// The sans-I/O core.
    type Endpoint: StreamEndpoint;

    /// The endpoint, for the driver to feed and poll.
    fn endpoint(&mut self) -> &mut Self::Endpoint;

    /// One event from the endpoint.
    fn on_event(&mut self, event: <Self::Endpoint as StreamEndpoint>::Event, ctx: &mut IoCtx<'_>);

    /// A run of [`on_event`](Self::on_event) calls ended (the endpoint has no more
    /// for now): where an app hands on what those events gathered in one piece (one
    /// callback job for a burst of messages instead of one each).
    fn on_events_done(&mut self, _ctx: &mut IoCtx<'_>) {}

    /// The connection closed; the endpoint already saw `handle_closed` and its last
    /// events were delivered. Called once.
    fn on_closed(&mut self, _reason: &CloseReason, _ctx: &mut IoCtx<'_>) {}
}

/// Limits and timeouts of one connection.
#[derive(Debug, Clone, Copy)]
pub struct StreamConfig {
    /// Give up connecting after this long (`None`: the OS decides).
    pub connect_timeout: Option<Duration>,
    /// Bytes the driver buffers for the socket; when full it pulls nothing more from
    /// the endpoint (`room == 0`) and the endpoint's own queue holds the rest.
    pub send_buffer: usize,
    /// Close when the peer has read nothing of what waits for this long.
    pub stall_timeout: Option<Duration>,
    /// Size of one socket read.
    pub read_chunk: usize,
    /// Reads per readiness event before the thread's other sockets get a turn.
    pub reads_per_turn: usize,
    /// Disable Nagle's algorithm (request/response protocols want this).
    pub nodelay: bool,
    /// Acknowledge every read at once (Linux `TCP_QUICKACK`, re-armed after each read,
    /// since the kernel drops back to delayed ACKs). For peers that write a header and
    /// its payload separately with Nagle on, as ldmsd does with READ_RESP: a delayed ACK
    /// would hold the payload back ~40 ms.
    pub quickack: bool,
    /// TCP keepalive: probe a connection idle this long (`None`: the OS default, off).
    /// Protocols whose peers set it (libchirp: 60 s) set it too, so a peer that vanished
    /// without a FIN is noticed even when neither side has anything to send.
    pub keepalive: Option<Duration>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            connect_timeout: Some(Duration::from_secs(10)),
            send_buffer: 256 * 1024,
            stall_timeout: None,
            read_chunk: 64 * 1024,
            reads_per_turn: 16,
            nodelay: true,
            quickack: false,
            keepalive: None,
        }
    }
}

/// The address of a driven stream connection.
pub type StreamAddress<A> = Address<StreamDriver<A>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting { deadline: Option<Instant> },
    Open,
    Closed,
}

/// A TCP connection owned by the driver: socket, buffers, interest, one timer.
pub struct StreamDriver<A: StreamApp> {
    app: A,
    socket: TcpStream,
    config: StreamConfig,
    id: u64,
    token: Option<Token>,
    phase: Phase,
    out: BytesMut,
    write_interest: bool,
    read_paused: bool,
    /// The poller said the peer finished sending (FIN): read to the end even after a
    /// short read, for no further edge will come for it.
    peer_finished: bool,
    /// The endpoint held back decoded input (it wanted none): deliver again once it
    /// wants input.
    input_held: bool,
    read_scheduled: bool,
    /// A pump (flush, interest, timer) is queued for the end of this loop turn.
    pump_scheduled: bool,
    stalled_since: Option<Instant>,
    deadline: Deadline,
}

/// Connect to `to` and drive `app` on it, on the current I/O thread (which must be
/// `address`'s). The endpoint sees `handle_connected` once the TCP handshake is done;
/// what it transmits before that waits in the send buffer.
///
/// # Errors
/// The socket or registry error (the connection then never existed).
pub fn connect<A: StreamApp>(
    ctx: &mut IoCtx<'_>,
    address: &Arc<StreamAddress<A>>,
    to: SocketAddr,
    config: StreamConfig,
    app: A,
) -> std::io::Result<()> {
    let socket = TcpStream::connect(to)?;
    let deadline = config.connect_timeout.map(|t| ctx.now() + t);
    open(ctx, address, socket, config, app, Phase::Connecting { deadline })
}

/// Drive `app` on an accepted `socket`, on the current I/O thread (which must be
/// `address`'s).
///
/// # Errors
/// The registry error.
pub fn adopt<A: StreamApp>(
    ctx: &mut IoCtx<'_>,
    address: &Arc<StreamAddress<A>>,
    socket: TcpStream,
    config: StreamConfig,
    app: A,
) -> std::io::Result<()> {
    apply_socket_options(&socket, &config);
    open(ctx, address, socket, config, app, Phase::Open)
}

fn open<A: StreamApp>(
    ctx: &mut IoCtx<'_>,
    address: &Arc<StreamAddress<A>>,
    socket: TcpStream,
    config: StreamConfig,
    app: A,
    phase: Phase,
) -> std::io::Result<()> {
    debug_assert_eq!(ctx.thread_index(), address.thread(), "a connection opens on its own I/O thread");
    let driver = StreamDriver {
        app,
        socket,
        config,
        id: address.id(),
        token: None,
        phase,
        out: BytesMut::with_capacity(4096),
        write_interest: true,
        read_paused: false,
        peer_finished: false,
        input_held: false,
        read_scheduled: false,
        pump_scheduled: false,
        stalled_since: None,
        deadline: Deadline::default(),
    };
    let token = ctx.register(Box::new(driver))?;
    let _ = address.token.set(token);
    // First pump: an accepted connection starts now, a connecting one arms its
    // connect deadline.
    ctx.with_handler::<StreamDriver<A>, _>(token, |driver, ctx| {
        if driver.phase == Phase::Open {
            let now = ctx.now();
            driver.app.endpoint().handle_connected(now);
        }
        ((), driver.pump(ctx))
    });
    Ok(())
}

impl<A: StreamApp> StreamDriver<A> {
    fn keep(&self) -> Keep {
        if self.phase == Phase::Closed { Keep::No } else { Keep::Yes }
    }

    /// Everything after an input, a call or a timeout: events to the app, bytes to
    /// the socket, reading resumed when the endpoint wants input again, interest
    /// and the one timer brought up to date.
    fn pump(&mut self, ctx: &mut IoCtx<'_>) -> Keep {
        loop {
            self.deliver(ctx);
            if self.phase == Phase::Closed {
                return Keep::No;
            }
            if self.phase == Phase::Open {
                self.flush(ctx);
                if self.phase == Phase::Closed {
                    return Keep::No;
                }
                // Writing may itself complete operations (chirp's asynchronous sends
                // finish when their bytes are handed over): their events go to the app
                // now, not at the next input, which may never come while the app holds
                // every receive slot.
                if self.deliver(ctx) {
                    continue;
                }
                let wants_input = self.app.endpoint().wants_input();
                if wants_input && self.input_held {
                    self.input_held = false;
                    continue;
                }
                if wants_input && self.read_paused {
                    self.read_paused = false;
                    self.read(ctx);
                    continue;
                }
            }
            break;
        }
        self.update_interest(ctx);
        self.rearm(ctx);
        self.keep()
    }

    /// Hand the endpoint's events to the app; true if there were any (or it closed).
    fn deliver(&mut self, ctx: &mut IoCtx<'_>) -> bool {
        let mut any = false;
        while let Some(event) = self.app.endpoint().poll_event() {
            self.app.on_event(event, ctx);
            any = true;
        }
        if any {
            self.app.on_events_done(ctx);
        }
        self.input_held = !self.app.endpoint().wants_input();
        if self.phase != Phase::Closed
            && let Some(reason) = self.app.endpoint().poll_close()
        {
            self.close(ctx, reason);
            any = true;
        }
        any
    }

    fn flush(&mut self, ctx: &mut IoCtx<'_>) {
        let now = ctx.now();
        loop {
            let room = self.config.send_buffer.saturating_sub(self.out.len());
            if room > 0 {
                self.app.endpoint().poll_transmit(now, room, &mut self.out);
            }
            if self.out.is_empty() {
                self.stalled_since = None;
                // A burst (a large directory, a thousand lookups) grew the buffer; an idle
                // connection should not keep it.
                if self.out.capacity() > self.config.send_buffer {
                    self.out = BytesMut::new();
                }
                return;
            }
            match self.socket.write(&self.out) {
                Ok(0) => return self.close(ctx, CloseReason::PeerClosed),
                Ok(n) => {
                    self.out.advance(n);
                    self.stalled_since = None;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.stalled_since.get_or_insert(now);
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                    return self.close(ctx, CloseReason::PeerClosed);
                }
                Err(e) => return self.close(ctx, CloseReason::Io(format!("send failed: {e}"))),
            }
        }
    }

    fn read(&mut self, ctx: &mut IoCtx<'_>) {
        let mut buf = ctx.take_read_buf(self.config.read_chunk.max(512));
        let more = self.read_into(ctx, &mut buf);
        ctx.return_read_buf(buf);
        if more {
            // More may wait, and readiness is edge-triggered: come back for it after the
            // thread's other sockets had their turn.
            self.schedule_read(ctx);
        }
    }

    /// Reads up to the per-turn budget; true if the budget ran out with more to read.
    fn read_into(&mut self, ctx: &mut IoCtx<'_>, buf: &mut [u8]) -> bool {
        for _ in 0..self.config.reads_per_turn.max(1) {
            if !self.app.endpoint().wants_input() {
                self.read_paused = true;
                return false;
            }
            match self.socket.read(buf) {
                Ok(0) => {
                    self.close(ctx, CloseReason::PeerClosed);
                    return false;
                }
                Ok(n) => {
                    if self.config.quickack {
                        quickack(&self.socket);
                    }
                    let now = ctx.now();
                    self.app.endpoint().handle_input(now, &buf[..n]);
                    self.deliver(ctx);
                    if self.phase == Phase::Closed {
                        return false;
                    }
                    // A short read emptied the socket: asking again would only hear
                    // WouldBlock, one syscall more per message, and in request/reply
                    // traffic one that contends with the kernel delivering the next
                    // segment on the socket's lock. Data arriving later raises a new edge
                    // (epoll and kqueue report every arrival on an edge-triggered socket).
                    if n < buf.len() && !self.peer_finished {
                        return false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    self.close(ctx, CloseReason::PeerClosed);
                    return false;
                }
                Err(e) => {
                    self.close(ctx, CloseReason::Io(format!("receive failed: {e}")));
                    return false;
                }
            }
        }
        true
    }

    fn schedule_pump(&mut self, ctx: &mut IoCtx<'_>) {
        let Some(token) = self.token else {
            self.pump(ctx);
            return;
        };
        if self.pump_scheduled {
            return;
        }
        self.pump_scheduled = true;
        let id = self.id;
        ctx.defer(move |ctx| {
            ctx.with_handler::<StreamDriver<A>, _>(token, |driver, ctx| {
                if driver.id != id {
                    return ((), Keep::Yes);
                }
                driver.pump_scheduled = false;
                ((), driver.pump(ctx))
            });
        });
    }

    fn schedule_read(&mut self, ctx: &mut IoCtx<'_>) {
        let Some(token) = self.token else { return };
        if self.read_scheduled {
            return;
        }
        self.read_scheduled = true;
        let id = self.id;
        ctx.defer(move |ctx| {
            ctx.with_handler::<StreamDriver<A>, _>(token, |driver, ctx| {
                if driver.id != id {
                    return ((), Keep::Yes);
                }
                driver.read_scheduled = false;
                if driver.phase == Phase::Open && !driver.read_paused {
                    driver.read(ctx);
                }
                ((), driver.pump(ctx))
            });
        });
    }

    fn update_interest(&mut self, ctx: &mut IoCtx<'_>) {
        let want_write = !self.out.is_empty() || matches!(self.phase, Phase::Connecting { .. });
        if want_write == self.write_interest {
            return;
        }
        let Some(token) = self.token else { return };
        let interest = if want_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        match ctx.reregister(&mut self.socket, token, interest) {
            Ok(()) => self.write_interest = want_write,
            Err(e) => self.close(ctx, CloseReason::Io(format!("reregister failed: {e}"))),
        }
    }

    fn own_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Connecting { deadline } => deadline,
            Phase::Open => self.stalled_since.zip(self.config.stall_timeout).map(|(since, limit)| since + limit),
            Phase::Closed => None,
        }
    }

    fn rearm(&mut self, ctx: &mut IoCtx<'_>) {
        let endpoint = self.app.endpoint().poll_timeout();
        let want = match (endpoint, self.own_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.deadline.rearm::<Self>(ctx, want, self.token, Self::fire, self.id);
    }

    fn fire(&mut self, ctx: &mut IoCtx<'_>) -> Keep {
        self.deadline.fired();
        let now = ctx.now();
        match self.phase {
            Phase::Connecting { deadline: Some(at) } if now >= at => {
                self.close(ctx, CloseReason::TimedOut("connect".into()));
                return Keep::No;
            }
            Phase::Open => {
                if let (Some(since), Some(limit)) = (self.stalled_since, self.config.stall_timeout)
                    && now >= since + limit
                {
                    let waited = now.saturating_duration_since(since);
                    self.close(ctx, CloseReason::TimedOut(format!("peer stopped reading for {waited:?}")));
                    return Keep::No;
                }
            }
            _ => {}
        }
        if self.phase != Phase::Closed {
            self.app.endpoint().handle_timeout(now);
        }
        self.pump(ctx)
    }

    fn finish_connect(&mut self, ctx: &mut IoCtx<'_>) {
        match self.socket.take_error() {
            Ok(Some(err)) | Err(err) => return self.close(ctx, CloseReason::Io(format!("connect failed: {err}"))),
            Ok(None) => {}
        }
        match self.socket.peer_addr() {
            Ok(_) => {
                self.phase = Phase::Open;
                apply_socket_options(&self.socket, &self.config);
                let now = ctx.now();
                self.app.endpoint().handle_connected(now);
            }
            Err(e) if e.kind() == ErrorKind::NotConnected => {}
            Err(e) => self.close(ctx, CloseReason::Io(format!("connect failed: {e}"))),
        }
    }

    /// Close once: the endpoint hears it, its last events reach the app, then the app.
    fn close(&mut self, ctx: &mut IoCtx<'_>, reason: CloseReason) {
        if self.phase == Phase::Closed {
            return;
        }
        let was_open = self.phase == Phase::Open;
        self.phase = Phase::Closed;
        self.deadline.cancel(ctx);
        let now = ctx.now();
        if was_open && matches!(reason, CloseReason::Protocol(_) | CloseReason::Local(_) | CloseReason::TimedOut(_)) {
            self.last_words(now);
        }
        self.app.endpoint().handle_closed(now, &reason);
        while let Some(event) = self.app.endpoint().poll_event() {
            self.app.on_event(event, ctx);
        }
        self.app.on_closed(&reason, ctx);
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

impl<A: StreamApp> StreamDriver<A> {
    /// One non-blocking write of what is still queued before a close this side decided,
    /// so that a refusal (an error reply, a REJECTED) reaches the peer when the socket
    /// has room; what does not fit is dropped with the connection.
    fn last_words(&mut self, now: Instant) {
        let room = self.config.send_buffer.saturating_sub(self.out.len());
        if room > 0 {
            self.app.endpoint().poll_transmit(now, room, &mut self.out);
        }
        if !self.out.is_empty()
            && let Ok(n) = self.socket.write(&self.out)
        {
            self.out.advance(n);
        }
    }
}

impl<A: StreamApp> Driven for StreamDriver<A> {
    type App = A;

    fn driver_id(&self) -> u64 {
        self.id
    }

    fn call(&mut self, ctx: &mut IoCtx<'_>, f: impl FnOnce(&mut A, &mut IoCtx<'_>)) -> Keep {
        if self.phase == Phase::Closed {
            return Keep::No;
        }
        f(&mut self.app, ctx);
        // Calls come in bursts: a callback chain sends the next request for each reply a
        // read brought, other threads queue operations. Events go out now; the socket
        // write waits for the end of the burst (later in this loop turn), so a burst
        // leaves as one write instead of one small write (and one peer wake-up) per call.
        self.deliver(ctx);
        if self.phase == Phase::Closed {
            return Keep::No;
        }
        self.schedule_pump(ctx);
        self.keep()
    }
}

impl<A: StreamApp> IoHandler for StreamDriver<A> {
    fn register(&mut self, registry: &Registry, token: Token) -> std::io::Result<()> {
        self.token = Some(token);
        registry.register(&mut self.socket, token, Interest::READABLE | Interest::WRITABLE)
    }

    fn ready(&mut self, ctx: &mut IoCtx<'_>, _token: Token, event: &mio::event::Event) -> Keep {
        if matches!(self.phase, Phase::Connecting { .. }) {
            self.finish_connect(ctx);
        }
        if self.phase == Phase::Open && (event.is_readable() || event.is_read_closed() || event.is_error()) {
            // Data and the FIN can come in one edge: the short read that takes the data
            // must not be the last read, or the connection sits half-closed (CLOSE_WAIT)
            // while the peer waits for our close (libca's exit waited 30 s).
            self.peer_finished |= event.is_read_closed();
            if self.read_paused {
                // Input waits in the socket until the endpoint wants it.
            } else {
                self.read(ctx);
            }
        }
        self.pump(ctx)
    }

    fn closed(&mut self, ctx: &mut IoCtx<'_>) {
        self.close(ctx, CloseReason::Shutdown);
    }
}

/// NODELAY and keepalive as `config` asks; a refusal is logged, not fatal (the
/// connection works without them).
fn apply_socket_options(socket: &TcpStream, config: &StreamConfig) {
    if config.nodelay
        && let Err(e) = socket.set_nodelay(true)
    {
        tracing::debug!("cannot set TCP_NODELAY: {e}");
    }
    if let Some(idle) = config.keepalive {
        let keepalive = socket2::TcpKeepalive::new().with_time(idle);
        if let Err(e) = socket2::SockRef::from(socket).set_tcp_keepalive(&keepalive) {
            tracing::debug!("cannot set TCP keepalive: {e}");
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn quickack(socket: &TcpStream) {
    let _ = socket2::SockRef::from(socket).set_tcp_quickack(true);
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn quickack(_: &TcpStream) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_and_nodelay_are_applied_as_configured() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std_stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let socket = TcpStream::from_std(std_stream);
        let sock = socket2::SockRef::from(&socket);
        apply_socket_options(&socket, &StreamConfig { nodelay: false, ..StreamConfig::default() });
        assert!(!sock.keepalive().unwrap(), "no keepalive unless asked");
        let config = StreamConfig { keepalive: Some(Duration::from_secs(60)), ..StreamConfig::default() };
        apply_socket_options(&socket, &config);
        assert!(sock.keepalive().unwrap());
        assert!(sock.tcp_nodelay().unwrap());
        #[cfg(target_os = "linux")]
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(60));
    }
}
