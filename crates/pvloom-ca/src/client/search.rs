//! Name resolution over UDP: the application layer above the sans-I/O
//! [`SearchEngine`], run by pvloom-core's datagram driver. It hands answers to the
//! context, due names to the name servers, and starts a repeater when none confirms.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Weak};

use pvloom_core::IoCtx;
use pvloom_core::driver::{self, DatagramAddress, DatagramApp};
use pvloom_core::mio::net::UdpSocket;

use super::context::ContextInner;
use super::search_engine::{SearchConfig, SearchEngine, SearchEvent};

pub(crate) type SearchAddress = DatagramAddress<SearchHandler>;

pub(crate) struct SearchHandler {
    context: Weak<ContextInner>,
    pub(crate) engine: SearchEngine,
}

impl SearchHandler {
    /// Bind the search socket and drive the engine on this I/O thread.
    pub(crate) fn open(
        ctx: &mut IoCtx<'_>,
        address: &Arc<SearchAddress>,
        context: &Arc<ContextInner>,
    ) -> std::io::Result<()> {
        let socket = UdpSocket::bind(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))?;
        socket.set_broadcast(true)?;
        let config = SearchConfig {
            destinations: context.config.search_destinations(),
            max_period: context.config.max_search_period,
            repeater_port: Some(context.config.repeater_port),
        };
        let handler = SearchHandler { context: Arc::downgrade(context), engine: SearchEngine::new(ctx.now(), config) };
        driver::bind_udp(ctx, address, socket, handler)
    }
}

impl DatagramApp for SearchHandler {
    type Endpoint = SearchEngine;

    fn endpoint(&mut self) -> &mut SearchEngine {
        &mut self.engine
    }

    fn on_event(&mut self, event: SearchEvent, _ctx: &mut IoCtx<'_>) {
        let Some(context) = self.context.upgrade() else { return };
        match event {
            SearchEvent::Found { cid, server, version } => context.found(cid, server, version.unwrap_or(0)),
            SearchEvent::Heard(server) => context.heard_from(server),
            SearchEvent::Due(names) => context.search_name_servers(&names),
            SearchEvent::StartRepeater => context.ensure_repeater(),
            SearchEvent::RepeaterConfirmed => {}
        }
    }
}
