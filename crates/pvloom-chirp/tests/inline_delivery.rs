//! A runtime with `Delivery::Inline` runs completion callbacks (`then`) and handlers on
//! the I/O thread, inside whatever completed them. A callback that calls back into the
//! node (send again, request again: the natural retry) must not find the node's locks
//! still held by the code that completed it, or that I/O thread deadlocks.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use pvloom_chirp::{Chirp, ChirpError, Config, Outgoing, SendFailure};
use pvloom_core::{Delivery, Runtime};

const WAIT: Duration = Duration::from_secs(10);

fn inline_runtime() -> Runtime {
    Runtime::builder().io_threads(2).delivery(Delivery::Inline).build().unwrap()
}

fn config() -> Config {
    Config {
        synchronous: false,
        port: 0,
        bind_v4: Ipv4Addr::LOCALHOST,
        disable_encryption: true,
        timeout: Duration::from_millis(200),
        reuse_time: Duration::from_secs(1),
        ..Config::default()
    }
}

fn dead_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap()
}

/// Wait for what the callback reports; on a deadlock the I/O thread never returns, so
/// the runtime and nodes are leaked (dropping them would join that thread forever) and
/// the test fails.
fn reported<T, K>(rx: &mpsc::Receiver<T>, keep: K, what: &str) -> (T, K) {
    match rx.recv_timeout(WAIT) {
        Ok(value) => (value, keep),
        Err(_) => {
            std::mem::forget(keep);
            panic!("{what}: the callback never returned (deadlock on the node's lock)");
        }
    }
}

#[test]
fn a_send_failure_callback_may_send_again() {
    let rt = inline_runtime();
    let node = Arc::new(Chirp::start(&rt.handle(), &config(), |_| {}).unwrap());
    let dead = dead_port();
    // The first refused connect fails the first message; the second fails after the
    // 50-550 ms block, long after its callback was registered, so the callback runs on
    // the I/O thread that failed it (inside the node's connection bookkeeping).
    let first = node.send(dead, Outgoing::new(&b"one"[..]));
    let second = node.send(dead, Outgoing::new(&b"two"[..]));
    let (tx, rx) = mpsc::channel();
    let again = node.clone();
    second.then(move |result| {
        let retry = again.send(dead, Outgoing::new(&b"retry"[..]));
        let _ = tx.send((result, retry));
    });
    let ((result, retry), _keep) = reported(&rx, (rt, node.clone()), "send failed, callback sends");
    assert!(matches!(result, Ok(Err(ChirpError::Failed(SendFailure::ConnectionLost(_))))), "{result:?}");
    assert!(first.wait_timeout(WAIT).unwrap().is_err());
    let retried = retry.wait_timeout(WAIT).unwrap();
    assert!(matches!(retried, Err(ChirpError::Failed(SendFailure::ConnectionLost(_)))), "{retried:?}");
}

#[test]
fn an_unanswered_request_callback_may_request_again() {
    let rt = inline_runtime();
    let silent = Chirp::start(&rt.handle(), &config(), |_| {}).unwrap();
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, silent.port()));
    let node = Arc::new(Chirp::start(&rt.handle(), &config(), |_| {}).unwrap());
    let (_, answer) = node.request(to, Outgoing::new(&b"anyone?"[..]));
    let (tx, rx) = mpsc::channel();
    let again = node.clone();
    // Completed by the request's timer, on an I/O thread.
    answer.then(move |result| {
        let (sent, answer) = again.request(to, Outgoing::new(&b"still there?"[..]));
        let _ = tx.send((result, sent, answer));
    });
    let ((result, sent, answer), _keep) = reported(&rx, (rt, node.clone(), silent), "no answer, callback requests");
    assert!(matches!(result, Ok(Err(ChirpError::NoAnswer(_)))), "{result:?}");
    sent.wait_timeout(WAIT).unwrap().unwrap();
    assert!(matches!(answer.wait_timeout(WAIT).unwrap(), Err(ChirpError::NoAnswer(_))));
}

#[test]
fn an_inline_handler_may_answer_through_its_node() {
    let rt = inline_runtime();
    let me: Arc<OnceLock<Chirp>> = Arc::new(OnceLock::new());
    let echo = {
        let me = me.clone();
        Chirp::start(&rt.handle(), &config(), move |msg| {
            if let Some(node) = me.get() {
                drop(node.send(msg.from(), msg.reply(msg.data.clone())));
            }
        })
        .unwrap()
    };
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, echo.port()));
    let _ = me.set(echo);
    let client = Chirp::start(&rt.handle(), &config(), |_| {}).unwrap();
    for i in 0..20 {
        let (sent, answer) = client.request(to, Outgoing::new(format!("{i}").into_bytes()));
        sent.wait_timeout(WAIT).unwrap().unwrap();
        assert_eq!(answer.wait_timeout(WAIT).unwrap().unwrap().data, format!("{i}").into_bytes());
    }
    client.stop();
    if let Some(echo) = me.get() {
        echo.stop();
    }
}
