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
}

impl<F> Listener<F>
where
    F: FnMut(TcpStream, SocketAddr, &mut IoCtx<'_>) + Send + 'static,
{
    /// Serve `socket` (bound and listening) with `on_accept`.
    pub fn new(socket: TcpListener, on_accept: F) -> Self {
        Listener { socket, on_accept }
    }
}

impl<F> IoHandler for Listener<F>
where
    F: FnMut(TcpStream, SocketAddr, &mut IoCtx<'_>) + Send + 'static,
{
    fn register(&mut self, registry: &Registry, token: Token) -> std::io::Result<()> {
        registry.register(&mut self.socket, token, Interest::READABLE)
    }

    fn ready(&mut self, ctx: &mut IoCtx<'_>, _: Token, _: &mio::event::Event) -> Keep {
        loop {
            match self.socket.accept() {
                Ok((stream, peer)) => (self.on_accept)(stream, peer, ctx),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Keep::Yes,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Out of descriptors and the like: try again on the next readiness.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    return Keep::Yes;
                }
            }
        }
    }
}
