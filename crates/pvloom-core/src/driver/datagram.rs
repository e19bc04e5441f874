//! The UDP socket driver.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};

use super::address::{Address, Driven};
use super::deadline::Deadline;
use crate::endpoint::{Datagram, DatagramEndpoint};
use crate::runtime::{IoCtx, IoHandler, Keep};

/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_536;
/// Datagrams read per readiness event before the thread's other sockets get a turn.
const READS_PER_TURN: usize = 256;
/// Consecutive receive errors (ICMP reports) tolerated in one turn.
const MAX_ERRORS_PER_TURN: usize = 64;

/// The protocol's layer above its datagram endpoint, on the socket's I/O thread.
pub trait DatagramApp: Send + 'static {
    /// The sans-I/O core.
    type Endpoint: DatagramEndpoint;

    /// The endpoint, for the driver to feed and poll.
    fn endpoint(&mut self) -> &mut Self::Endpoint;

    /// One event from the endpoint.
    fn on_event(&mut self, event: <Self::Endpoint as DatagramEndpoint>::Event, ctx: &mut IoCtx<'_>);
}

/// The address of a driven datagram socket.
pub type DatagramAddress<A> = Address<DatagramDriver<A>>;

/// A UDP socket owned by the driver.
pub struct DatagramDriver<A: DatagramApp> {
    app: A,
    socket: UdpSocket,
    id: u64,
    token: Option<Token>,
    registry: Option<Registry>,
    buffer: Box<[u8]>,
    blocked: Option<Datagram>,
    write_interest: bool,
    read_scheduled: bool,
    deadline: Deadline,
}

/// Drive `app` on `socket` (already bound, broadcast set as wanted) on the current
/// I/O thread, which must be `address`'s.
///
/// # Errors
/// The registry error.
pub fn bind_udp<A: DatagramApp>(
    ctx: &mut IoCtx<'_>,
    address: &Arc<DatagramAddress<A>>,
    socket: UdpSocket,
    app: A,
) -> std::io::Result<()> {
    debug_assert_eq!(ctx.thread_index(), address.thread(), "a socket opens on its own I/O thread");
    let driver = DatagramDriver {
        app,
        socket,
        id: address.id(),
        token: None,
        registry: None,
        buffer: vec![0; MAX_DATAGRAM].into_boxed_slice(),
        blocked: None,
        write_interest: false,
        read_scheduled: false,
        deadline: Deadline::default(),
    };
    let token = ctx.register(Box::new(driver))?;
    let _ = address.token.set(token);
    ctx.with_handler::<DatagramDriver<A>, _>(token, |driver, ctx| ((), driver.pump(ctx)));
    Ok(())
}

impl<A: DatagramApp> DatagramDriver<A> {
    fn pump(&mut self, ctx: &mut IoCtx<'_>) -> Keep {
        while let Some(event) = self.app.endpoint().poll_event() {
            self.app.on_event(event, ctx);
        }
        self.transmit(ctx);
        if self.app.endpoint().is_closed() {
            // What it queued last went out above; the socket closes with the handler.
            self.deadline.cancel(ctx);
            return Keep::No;
        }
        let want = self.app.endpoint().poll_timeout();
        self.deadline.rearm::<Self>(ctx, want, self.token, Self::fire, self.id);
        Keep::Yes
    }

    fn transmit(&mut self, ctx: &mut IoCtx<'_>) {
        let now = ctx.now();
        loop {
            let Some(datagram) = self.blocked.take().or_else(|| self.app.endpoint().poll_transmit(now)) else { break };
            match self.socket.send_to(&datagram.data, datagram.to) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.blocked = Some(datagram);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => self.blocked = Some(datagram),
                // A bad or unreachable destination loses that datagram only.
                Err(e) => tracing::debug!(to = %datagram.to, "datagram not sent: {e}"),
            }
        }
        let want_write = self.blocked.is_some();
        if want_write != self.write_interest
            && let (Some(registry), Some(token)) = (&self.registry, self.token)
        {
            let interest = if want_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            if registry.reregister(&mut self.socket, token, interest).is_ok() {
                self.write_interest = want_write;
            }
        }
    }

    fn receive(&mut self, ctx: &mut IoCtx<'_>) {
        let mut errors = 0;
        for _ in 0..READS_PER_TURN {
            match self.socket.recv_from(&mut self.buffer) {
                Ok((n, from)) => {
                    let now = ctx.now();
                    self.app.endpoint().handle_datagram(now, from, &self.buffer[..n]);
                    while let Some(event) = self.app.endpoint().poll_event() {
                        self.app.on_event(event, ctx);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // ICMP errors surface here once each; a socket that keeps
                    // failing is given up on for this turn rather than spun on.
                    tracing::debug!("datagram socket: {e}");
                    errors += 1;
                    if errors > MAX_ERRORS_PER_TURN {
                        break;
                    }
                }
            }
        }
        self.schedule_receive(ctx);
    }

    fn schedule_receive(&mut self, ctx: &mut IoCtx<'_>) {
        let Some(token) = self.token else { return };
        if std::mem::replace(&mut self.read_scheduled, true) {
            return;
        }
        let id = self.id;
        ctx.defer(move |ctx| {
            ctx.with_handler::<DatagramDriver<A>, _>(token, |driver, ctx| {
                if driver.id != id {
                    return ((), Keep::Yes);
                }
                driver.read_scheduled = false;
                driver.receive(ctx);
                ((), driver.pump(ctx))
            });
        });
    }

    fn fire(&mut self, ctx: &mut IoCtx<'_>) -> Keep {
        self.deadline.fired();
        let now = ctx.now();
        self.app.endpoint().handle_timeout(now);
        self.pump(ctx)
    }

    /// The local address of the socket.
    ///
    /// # Errors
    /// The OS error.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

impl<A: DatagramApp> Driven for DatagramDriver<A> {
    type App = A;

    fn driver_id(&self) -> u64 {
        self.id
    }

    fn call(&mut self, ctx: &mut IoCtx<'_>, f: impl FnOnce(&mut A, &mut IoCtx<'_>)) -> Keep {
        f(&mut self.app, ctx);
        self.pump(ctx)
    }
}

impl<A: DatagramApp> IoHandler for DatagramDriver<A> {
    fn register(&mut self, registry: &Registry, token: Token) -> std::io::Result<()> {
        self.token = Some(token);
        self.registry = Some(registry.try_clone()?);
        registry.register(&mut self.socket, token, Interest::READABLE)
    }

    fn ready(&mut self, ctx: &mut IoCtx<'_>, _token: Token, event: &mio::event::Event) -> Keep {
        if event.is_readable() {
            self.receive(ctx);
        }
        self.pump(ctx)
    }

    fn closed(&mut self, ctx: &mut IoCtx<'_>) {
        self.deadline.cancel(ctx);
    }
}
