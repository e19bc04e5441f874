//! Name resolution over UDP: the application layer above the sans-I/O
//! [`SearchEngine`], run by pvloom-core's datagram driver. Its events go to a sink
//! (the client's core), so this layer knows nothing above it.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use pvloom_core::IoCtx;
use pvloom_core::driver::{self, DatagramAddress, DatagramApp};
use pvloom_core::mio::net::UdpSocket;

use super::search_engine::{SearchConfig, SearchEngine, SearchEvent};

/// Where the search engine's events go.
pub(crate) trait SearchSink: Send + 'static {
    /// One event, on the engine's I/O thread.
    fn on_search_event(&self, event: SearchEvent);
}

pub(crate) type SearchAddress<S> = DatagramAddress<SearchHandler<S>>;

pub(crate) struct SearchHandler<S: SearchSink> {
    sink: S,
    pub(crate) engine: SearchEngine,
}

impl<S: SearchSink> SearchHandler<S> {
    /// Bind the search socket and drive the engine on this I/O thread.
    pub(crate) fn open(
        ctx: &mut IoCtx<'_>,
        address: &Arc<SearchAddress<S>>,
        config: SearchConfig,
        sink: S,
    ) -> std::io::Result<()> {
        let socket = UdpSocket::bind(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))?;
        socket.set_broadcast(true)?;
        let handler = SearchHandler { sink, engine: SearchEngine::new(ctx.now(), config) };
        driver::bind_udp(ctx, address, socket, handler)
    }
}

impl<S: SearchSink> DatagramApp for SearchHandler<S> {
    type Endpoint = SearchEngine;

    fn endpoint(&mut self) -> &mut SearchEngine {
        &mut self.engine
    }

    fn on_event(&mut self, event: SearchEvent, _ctx: &mut IoCtx<'_>) {
        self.sink.on_search_event(event);
    }
}
