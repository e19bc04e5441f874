//! An echo that answers while it still holds every receive slot (libchirp's pool does:
//! the handler sends the reply and waits for it before its message is released). In
//! asynchronous mode the reply completes when its bytes are handed over, with no input
//! to follow: the driver must deliver that completion at once, or the echo stalls.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use pvloom_chirp::{Chirp, Config, Outgoing};
use pvloom_core::{Delivery, Runtime};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn an_async_echo_holding_all_its_slots_still_completes_its_replies() {
    let rt = Runtime::builder().io_threads(2).delivery(Delivery::ordered(1)).build().unwrap();
    let config = Config {
        synchronous: false,
        port: 0,
        bind_v4: Ipv4Addr::LOCALHOST,
        disable_encryption: true,
        ..Config::default()
    };
    let me: Arc<OnceLock<Chirp>> = Arc::new(OnceLock::new());
    let echo = {
        let me = me.clone();
        // One worker, blocking on each reply before returning (and so before the
        // message's slot is released): replies complete one by one.
        Chirp::start(&rt.handle(), &config, move |msg| {
            let node = me.get().expect("started");
            node.send(msg.from(), msg.reply(msg.data.clone())).wait_timeout(WAIT).unwrap().unwrap();
        })
        .unwrap()
    };
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, echo.port()));
    let _ = me.set(echo);
    let (tx, echoes) = mpsc::channel();
    let client = Chirp::start(&rt.handle(), &config, move |msg| {
        let _ = tx.send(msg.data);
    })
    .unwrap();
    let count = 40;
    let start = std::time::Instant::now();
    for i in 0..count {
        client.send_wait(to, Outgoing::new(format!("{i}").into_bytes())).unwrap();
    }
    let mut got: Vec<_> = (0..count).map(|_| echoes.recv_timeout(WAIT).expect("an echo")).collect();
    got.sort();
    let mut want: Vec<_> = (0..count).map(|i| pvloom_core::bytes::Bytes::from(format!("{i}"))).collect();
    want.sort();
    assert_eq!(got, want);
    // A stalled reply is only woken by its write deadline (TIMEOUT), so the bound
    // separates a stall from any scheduling noise.
    assert!(start.elapsed() < config.timeout, "replies stalled until a timer: {:?}", start.elapsed());
    client.stop();
    if let Some(echo) = me.get() {
        echo.stop();
    }
}
