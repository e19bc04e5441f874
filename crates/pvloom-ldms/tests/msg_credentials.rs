//! Credentials on the message bus: a peer that is not root may not publish under another
//! identity (EPERM, as ldmsd), and each delivery is checked against the subscriber's
//! identity and the message's uid/gid/perm. Two listeners share one bus: one whose peers
//! are root, one whose peers are uid 1000 (as another auth plugin would establish).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pvloom_core::Runtime;
use pvloom_ldms::bus::{BusConfig, MsgBus, MsgClient, MsgData};
use pvloom_ldms::client::{MsgOwner, Xprt, XprtConfig};
use pvloom_ldms::msg::MsgType;
use pvloom_ldms::server::{Credentials, LdmsServer, ServerConfig, SetRegistry};

fn listener(rt: &Runtime, bus: &Arc<MsgBus>, credentials: Credentials) -> LdmsServer {
    let config = ServerConfig { bus: Some(bus.clone()), credentials, ..ServerConfig::default() };
    LdmsServer::bind(rt.handle(), "127.0.0.1:0".parse().unwrap(), SetRegistry::new(), config).unwrap()
}

fn client(rt: &Runtime, addr: SocketAddr, bus: &Arc<MsgBus>) -> Xprt {
    let mut config = XprtConfig::default();
    config.conn.bus = Some(bus.clone());
    Xprt::connect(&rt.handle(), addr, config).unwrap()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn owner(uid: u32, gid: u32, perm: u32) -> MsgOwner {
    MsgOwner { uid, gid, perm }
}

#[test]
fn a_user_cannot_publish_as_someone_else() {
    let rt = Runtime::new().unwrap();
    let bus = MsgBus::new(BusConfig::default());
    let (_c, got) = {
        let got: Arc<Mutex<Vec<MsgData>>> = Arc::default();
        let g = got.clone();
        (MsgClient::new(&bus, &rt.handle(), "id", false, move |m| g.lock().push(m.clone())).unwrap(), got)
    };
    let user = listener(&rt, &bus, Credentials::user(1000, 100, vec![]));
    let x = client(&rt, user.local_addr(), &MsgBus::new(BusConfig::default()));
    let wait = Duration::from_secs(5);
    x.msg_publish_with("id", MsgType::String, "as root", owner(0, 0, 0o444), wait).unwrap();
    wait_until("the refusal", || x.msg_refused() == Some(1));
    x.msg_publish_with("id", MsgType::String, "as myself", owner(1000, 100, 0o444), wait).unwrap();
    wait_until("the delivery", || got.lock().len() == 1);
    let got = got.lock();
    assert_eq!(got[0].data().as_ref(), b"as myself");
    assert_eq!((got[0].uid(), got[0].gid()), (1000, 100));
}

#[test]
fn deliveries_follow_the_messages_permissions() {
    let rt = Runtime::new().unwrap();
    let bus = MsgBus::new(BusConfig::default());
    let root = listener(&rt, &bus, Credentials::root());
    let user = listener(&rt, &bus, Credentials::user(1000, 100, vec![200]));
    let sub_bus = MsgBus::new(BusConfig::default());
    let got: Arc<Mutex<Vec<MsgData>>> = Arc::default();
    let g = got.clone();
    let _c = MsgClient::new(&sub_bus, &rt.handle(), "p", false, move |m| g.lock().push(m.clone())).unwrap();
    let sub = client(&rt, user.local_addr(), &sub_bus);
    sub.msg_subscribe("p", false, -1).unwrap();
    let publisher = client(&rt, root.local_addr(), &MsgBus::new(BusConfig::default()));
    let wait = Duration::from_secs(5);
    let cases = [
        ("others may read", owner(0, 0, 0o444), true),
        ("root only", owner(0, 0, 0o600), false),
        ("the user's own", owner(1000, 0, 0o400), true),
        ("another user's", owner(1001, 0, 0o400), false),
        ("a group of the user", owner(0, 200, 0o040), true),
        ("another group", owner(0, 300, 0o040), false),
    ];
    for (what, o, _) in &cases {
        publisher.msg_publish_with("p", MsgType::String, *what, *o, wait).unwrap();
    }
    publisher.msg_publish_with("p", MsgType::String, "end", owner(0, 0, 0o444), wait).unwrap();
    wait_until("the last one", || got.lock().last().is_some_and(|m| m.data().as_ref() == b"end"));
    let seen: Vec<String> = got.lock().iter().map(|m| String::from_utf8_lossy(m.data()).into_owned()).collect();
    let want: Vec<String> = cases.iter().filter(|c| c.2).map(|c| c.0.to_string()).chain(["end".to_string()]).collect();
    assert_eq!(seen, want);
}
