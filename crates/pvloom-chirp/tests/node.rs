//! The node on the shared driver, two pvloom nodes on 127.0.0.1 (free ports): async and
//! sync sends, the sync completion waiting for the remote's release, request/answer,
//! a dead remote, stop.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::time::Duration;

use pvloom_chirp::{Chirp, ChirpError, Config, Message, Outgoing, SendFailure};
use pvloom_core::{Delivery, Runtime};

const WAIT: Duration = Duration::from_secs(10);

fn runtime() -> Runtime {
    Runtime::builder().io_threads(2).delivery(Delivery::ordered(2)).build().unwrap()
}

fn config(synchronous: bool) -> Config {
    Config { synchronous, port: 0, bind_v4: Ipv4Addr::LOCALHOST, disable_encryption: true, ..Config::default() }
}

fn at(node: &Chirp) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, node.port()))
}

fn collector(rt: &Runtime, config: &Config) -> (Chirp, mpsc::Receiver<Message>) {
    let (tx, rx) = mpsc::channel();
    let node = Chirp::start(&rt.handle(), config, move |msg| {
        let _ = tx.send(msg);
    })
    .unwrap();
    (node, rx)
}

fn round_trip(synchronous: bool) {
    let rt = runtime();
    let config = config(synchronous);
    let (echo_tx, echo_rx) = mpsc::channel::<Message>();
    let echo = Chirp::start(&rt.handle(), &config, move |msg| {
        let _ = echo_tx.send(msg);
    })
    .unwrap();
    let (client, answers) = collector(&rt, &config);
    let count = 50;
    let mut sends = Vec::new();
    let mut identities = Vec::new();
    for i in 0..count {
        let message = Outgoing::new(format!("m{i}").into_bytes());
        identities.push(message.identity);
        sends.push(client.send(at(&echo), message));
    }
    // The echo's handler hands messages to this thread, which answers them.
    for _ in 0..count {
        let msg = echo_rx.recv_timeout(WAIT).expect("a message at the echo node");
        assert_eq!(msg.remote_identity, client.identity());
        drop(echo.send(msg.from(), msg.reply(msg.data.clone())));
    }
    for send in sends {
        send.wait_timeout(WAIT).unwrap().unwrap();
    }
    let mut got: Vec<_> = (0..count).map(|_| answers.recv_timeout(WAIT).expect("an answer")).collect();
    got.sort_by_key(|m| identities.iter().position(|i| *i == m.identity));
    for (i, msg) in got.iter().enumerate() {
        assert_eq!(msg.identity, identities[i], "identity kept by the reply");
        assert_eq!(&msg.data[..], format!("m{i}").as_bytes());
        assert_eq!(msg.remote_identity, echo.identity());
    }
}

#[test]
fn async_round_trips_between_two_nodes() {
    round_trip(false);
}

#[test]
fn sync_round_trips_between_two_nodes() {
    round_trip(true);
}

#[test]
fn a_sync_send_completes_only_when_the_remote_releases() {
    let rt = runtime();
    let receiver_config = Config { auto_release: false, ..config(true) };
    let (receiver, inbox) = collector(&rt, &receiver_config);
    let sender = Chirp::start(&rt.handle(), &config(true), |_| {}).unwrap();
    let send = sender.send(at(&receiver), Outgoing::new(&b"hold me"[..]));
    let held = inbox.recv_timeout(WAIT).unwrap();
    assert!(held.has_slot());
    // The ACK that completes the send is only sent by the release below.
    assert!(!send.is_ready(), "completed before the release");
    let released = held.release().wait_timeout(WAIT).unwrap();
    assert_eq!(released.map(|(identity, _)| identity), Some(held.identity));
    assert!(!held.has_slot());
    send.wait_timeout(WAIT).unwrap().unwrap();
    assert_eq!(held.release().wait_timeout(WAIT).unwrap(), None, "a second release finds no slot");
}

#[test]
fn a_request_gets_its_answer() {
    let rt = runtime();
    let (server, requests) = collector(&rt, &config(false));
    let client = Chirp::start(&rt.handle(), &config(false), |_| panic!("answers go to their request")).unwrap();
    let (sent, answer) = client.request(at(&server), Outgoing::new(&b"question"[..]));
    let request = requests.recv_timeout(WAIT).unwrap();
    drop(server.send(request.from(), request.reply(&b"answer"[..])));
    sent.wait_timeout(WAIT).unwrap().unwrap();
    let answer = answer.wait_timeout(WAIT).unwrap().unwrap();
    assert_eq!(answer.identity, request.identity);
    assert_eq!(&answer.data[..], b"answer");
}

#[test]
fn an_unanswered_request_times_out() {
    let rt = runtime();
    let short = Config { timeout: Duration::from_millis(200), reuse_time: Duration::from_secs(1), ..config(false) };
    let (server, _requests) = collector(&rt, &short);
    let client = Chirp::start(&rt.handle(), &short, |_| {}).unwrap();
    let (_, answer) = client.request(at(&server), Outgoing::new(&b"anyone?"[..]));
    assert!(matches!(answer.wait_timeout(WAIT).unwrap(), Err(ChirpError::NoAnswer(_))));
}

#[test]
fn sends_to_a_dead_remote_fail() {
    let rt = runtime();
    let client = Chirp::start(&rt.handle(), &config(false), |_| {}).unwrap();
    let dead = {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.local_addr().unwrap()
    };
    let sends: Vec<_> = (0..3).map(|_| client.send(dead, Outgoing::new(&b"x"[..]))).collect();
    for send in sends {
        // One message fails per refused connect, each after a 50-550 ms block.
        let result = send.wait_timeout(WAIT).unwrap();
        assert!(matches!(result, Err(ChirpError::Failed(SendFailure::ConnectionLost(_)))), "{result:?}");
    }
}

#[test]
fn stop_fails_what_waits() {
    let rt = runtime();
    let client = Chirp::start(&rt.handle(), &config(true), |_| {}).unwrap();
    let (receiver, _inbox) = collector(&rt, &Config { auto_release: false, ..config(true) });
    let first = client.send(at(&receiver), Outgoing::new(&b"held"[..]));
    let second = client.send(at(&receiver), Outgoing::new(&b"queued"[..]));
    client.stop();
    assert!(first.wait_timeout(WAIT).unwrap().is_err());
    assert!(second.wait_timeout(WAIT).unwrap().is_err());
    assert!(matches!(
        client.send(at(&receiver), Outgoing::new(&b"late"[..])).wait_timeout(WAIT).unwrap(),
        Err(ChirpError::Stopped)
    ));
}

#[test]
fn a_message_released_early_on_another_thread_while_its_batch_auto_releases_does_not_hang() {
    // The early release held the message's slot lock while it took the releases' lock;
    // the batch's auto-release takes them the other way round: both threads, and then
    // the connection's I/O thread, hung (after a few hundred to 150 000 messages).
    let rt = Runtime::builder().io_threads(1).delivery(Delivery::ordered(1)).build().unwrap();
    let config = Config { synchronous: false, max_slots: 32, auto_release: true, ..config(false) };
    let (early, to_release) = mpsc::channel::<Message>();
    let receiver = Chirp::start(&rt.handle(), &config, move |msg| {
        let _ = early.send(msg);
    })
    .unwrap();
    let released = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = released.clone();
    std::thread::spawn(move || {
        while let Ok(msg) = to_release.recv() {
            msg.release_detached();
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let sender = Chirp::start(&rt.handle(), &config, |_| {}).unwrap();
    let total = 40 * 256;
    let mut all_sent = true;
    for _ in 0..40 {
        let batch: Vec<_> = (0..256).map(|_| sender.send(at(&receiver), Outgoing::new(b"x".to_vec()))).collect();
        all_sent &= batch.into_iter().all(|sent| matches!(sent.wait_timeout(WAIT), Ok(Ok(()))));
    }
    let end = std::time::Instant::now() + WAIT;
    while released.load(std::sync::atomic::Ordering::SeqCst) < total && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    let released = released.load(std::sync::atomic::Ordering::SeqCst);
    if !all_sent || released != total {
        // Deadlocked threads would hang the drops (stop joins the I/O thread): leak them.
        std::mem::forget((sender, receiver, rt));
        panic!("stuck: all sent {all_sent}, {released} of {total} handled and released");
    }
    sender.stop();
    receiver.stop();
}
