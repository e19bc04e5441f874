//! Accepting TCP connections.

use std::io::ErrorKind;
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use crate::runtime::{IoCtx, IoHandler, Keep};

/// A listening socket that hands every accepted connection to `on_accept`, which
/// usually picks the least-loaded I/O thread and [`adopt`](super::adopt)s it there.
pub struct Listener<F> {
    socket: TcpListener,
    on_accept: F,
    token: Option<Token>,
}

/// Listen backlog: the kernel caps it at `net.core.somaxconn`. A shallow queue (std's 128)
/// overflows under connection churn (a port scan, clients reconnecting in a loop) even
/// when every connection is accepted at once, and each dropped SYN costs its client a
/// one-second retransmit.
pub const LISTEN_BACKLOG: i32 = 4096;

/// A non-blocking TCP listener on `addr` with `SO_REUSEADDR` (a restarted server rebinds
/// its port at once) and a [`LISTEN_BACKLOG`] deep accept queue.
///
/// # Errors
/// The socket, bind or listen error.
pub fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// How long to wait before accepting again after an error such as EMFILE.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

impl<F> Listener<F>
where
    F: FnMut(TcpStream, SocketAddr, &mut IoCtx<'_>) + Send + 'static,
{
    /// Serve `socket` (bound and listening) with `on_accept`.
    pub fn new(socket: TcpListener, on_accept: F) -> Self {
        Listener { socket, on_accept, token: None }
    }
}

impl<F> IoHandler for Listener<F>
where
    F: FnMut(TcpStream, SocketAddr, &mut IoCtx<'_>) + Send + 'static,
{
    fn register(&mut self, registry: &Registry, token: Token) -> std::io::Result<()> {
        self.token = Some(token);
        registry.register(&mut self.socket, token, Interest::READABLE)
    }

    fn ready(&mut self, ctx: &mut IoCtx<'_>, _: Token, _: &mio::event::Event) -> Keep {
        self.accept_all(ctx)
    }
}

impl<F> Listener<F>
where
    F: FnMut(TcpStream, SocketAddr, &mut IoCtx<'_>) + Send + 'static,
{
    fn accept_all(&mut self, ctx: &mut IoCtx<'_>) -> Keep {
        loop {
            match self.socket.accept() {
                Ok((stream, peer)) => (self.on_accept)(stream, peer, ctx),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Keep::Yes,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Out of descriptors and the like: readiness is edge-triggered, so
                // the connections already queued would wait for a new one; try again
                // shortly instead.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    if let Some(token) = self.token {
                        ctx.call_later(ACCEPT_RETRY, move |ctx| {
                            ctx.with_handler::<Listener<F>, _>(token, |listener, ctx| ((), listener.accept_all(ctx)));
                        });
                    }
                    return Keep::Yes;
                }
            }
        }
    }
}
