//! Arbitrary server bytes into a connected `ClientConn`.
//!
//! The recorded ACCEPTED opens the session; the client then has a DIR, a regex LOOKUP
//! and a notify DIR pending, so replies, rendezvous and reads all reach live operations.
//! The first input byte picks the read size. Nothing may panic, whatever comes.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pvloom_core::{CloseReason, StreamEndpoint};
use pvloom_ldms::client::{ClientConn, ClientConnConfig};
use pvloom_ldms::zap::{Frame, Msg, RailConnMsg};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let t0 = Instant::now();
    let mut config = ClientConnConfig::default();
    config.session.max_bulk_len = 1 << 18;
    let mut c = ClientConn::new(t0, config);
    let mut accepted = BytesMut::new();
    Frame::new(1, Msg::Accepted(RailConnMsg::new(1, 1, true).to_bytes())).encode(&mut accepted);
    c.handle_input(t0, &accepted);
    let _ = c.dir(t0, 0, None);
    let _ = c.lookup(t0, "localhost1/.*", 2, None);
    let _ = c.dir(t0, 1, None);
    let mut out = BytesMut::new();
    for piece in input.chunks(usize::from(cut).max(1)) {
        c.handle_input(t0, piece);
        while c.poll_event().is_some() {}
        c.poll_transmit(t0, usize::MAX, &mut out);
        out.clear();
        if c.poll_close().is_some() {
            break;
        }
    }
    c.handle_timeout(t0 + Duration::from_secs(60));
    while c.poll_event().is_some() {}
    c.handle_closed(t0, &CloseReason::PeerClosed);
    while c.poll_event().is_some() {}
});
