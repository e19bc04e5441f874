//! A blocking send that gives up withdraws what it can: a synchronous send queued
//! behind one that awaits its ACK (the receiver holds its only slot) times out as
//! `NotSent` and is never delivered, so the caller may send it again without a
//! duplicate; the one already written times out as `TimedOut` (it may still arrive).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use pvloom_chirp::{Chirp, ChirpError, Config, Message, Outgoing, SendFailure};
use pvloom_core::{Delivery, Runtime};

const WAIT: Duration = Duration::from_secs(10);

fn config() -> Config {
    Config {
        synchronous: true,
        auto_release: false,
        port: 0,
        bind_v4: Ipv4Addr::LOCALHOST,
        disable_encryption: true,
        ..Config::default()
    }
}

/// A receiver that holds every message it gets (its one slot stays taken), and a sender.
struct Pair {
    _rt: Runtime,
    held: Arc<Mutex<Vec<Message>>>,
    arrived: mpsc::Receiver<pvloom_core::bytes::Bytes>,
    receiver: Chirp,
    sender: Chirp,
    to: SocketAddr,
}

fn holding_pair() -> Pair {
    let rt = Runtime::builder().io_threads(2).delivery(Delivery::ordered(1)).build().unwrap();
    let held: Arc<Mutex<Vec<Message>>> = Arc::default();
    let (tx, arrived) = mpsc::channel();
    let receiver = {
        let held = held.clone();
        Chirp::start(&rt.handle(), &config(), move |msg| {
            let _ = tx.send(msg.data.clone());
            held.lock().unwrap().push(msg);
        })
        .unwrap()
    };
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, receiver.port()));
    let sender = Chirp::start(&rt.handle(), &config(), |_| {}).unwrap();
    Pair { _rt: rt, held, arrived, receiver, sender, to }
}

#[test]
fn a_timed_out_sync_send_still_queued_is_withdrawn_and_never_delivered() {
    let Pair { _rt, held, arrived, receiver, sender, to } = holding_pair();

    // Written, then held: its ACK does not come.
    let first = sender.send(to, Outgoing::new(&b"first"[..]));
    assert_eq!(&arrived.recv_timeout(WAIT).unwrap()[..], b"first");
    // Queued behind it: gives up while still waiting for its turn.
    let second = sender.send_wait_timeout(to, Outgoing::new(&b"second"[..]), Duration::from_millis(200));
    assert!(
        matches!(second, Err(ChirpError::Failed(SendFailure::NotSent(_)))),
        "a queued send is withdrawn: {second:?}"
    );
    // And another behind it.
    let third = sender.send_wait_timeout(to, Outgoing::new(&b"third"[..]), Duration::from_millis(200));
    assert!(matches!(third, Err(ChirpError::Failed(SendFailure::NotSent(_)))), "{third:?}");

    // The slot is freed: the first completes, and what follows is the next send
    // only: the withdrawn ones never went out.
    for msg in held.lock().unwrap().drain(..) {
        drop(msg.release());
    }
    first.wait_timeout(WAIT).unwrap().unwrap();
    // (Held in its turn, so not waited for.)
    let fourth = sender.send(to, Outgoing::new(&b"fourth"[..]));
    assert_eq!(&arrived.recv_timeout(WAIT).unwrap()[..], b"fourth", "withdrawn sends were delivered");
    assert!(arrived.recv_timeout(Duration::from_millis(200)).is_err());
    held.lock().unwrap().clear();
    drop(fourth);
    sender.stop();
    receiver.stop();
}

#[test]
fn a_timed_out_sync_send_already_written_reports_that_it_may_still_arrive() {
    let Pair { _rt, held, arrived, receiver, sender, to } = holding_pair();
    let result = sender.send_wait_timeout(to, Outgoing::new(&b"held"[..]), Duration::from_millis(300));
    assert!(matches!(result, Err(ChirpError::Failed(SendFailure::TimedOut(_)))), "{result:?}");
    assert_eq!(&arrived.recv_timeout(WAIT).unwrap()[..], b"held", "it did arrive");
    held.lock().unwrap().clear();
    sender.stop();
    receiver.stop();
}
