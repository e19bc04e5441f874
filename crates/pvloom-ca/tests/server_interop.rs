//! pvloom's CA server read, written and monitored by clients we did not write:
//! pyepics (EPICS base's libca) and caproto's threading client.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use pvloom_ca::proto::Value;
use pvloom_ca::server::{AccessRules, PvSpec, Server, ServerConfig};

fn start_server(repeater_port: u16) -> Server {
    let config = ServerConfig {
        interface: std::net::Ipv4Addr::LOCALHOST,
        port: 0,
        beacon_destinations: vec![std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, repeater_port)],
        ..ServerConfig::default()
    };
    let rules = AccessRules::parse("S:LOCKED READ\n").unwrap();
    let server = Server::builder().config(config).access_rules(rules).start().unwrap();
    let mut ai = PvSpec::new(Value::Double(vec![1.5]));
    ai.units = "mm".into();
    ai.precision = 3;
    ai.display_limits = (-10.0, 10.0);
    ai.control_limits = (-100.0, 100.0);
    ai.alarm_limits = Some((-8.0, -6.0, 6.0, 8.0));
    server.add_pv("S:AI", ai);
    server.add_pv("S:LONG", PvSpec::new(Value::Long(vec![42])));
    server.add_pv("S:STR", PvSpec::new(Value::String(vec!["hello".into()])));
    let mut mbb = PvSpec::new(Value::Enum(vec![1]));
    mbb.enum_strings = vec!["zero".into(), "one".into(), "two".into()];
    server.add_pv("S:ENUM", mbb);
    server.add_pv("S:WF", PvSpec::new(Value::Double((0..1000).map(f64::from).collect())));
    server.add_pv("S:BIG", PvSpec::new(Value::Double((0..1_000_000).map(|i| f64::from(i) * 0.5).collect())));
    server.add_pv("S:LOCKED", PvSpec::new(Value::Double(vec![3.0])));
    server
}

fn run_python(server: &Server, repeater: u16, script: &str) -> String {
    let port = server.port();
    let out = Command::new(support::venv_python())
        .arg("-c")
        .arg(script)
        .envs(support::server_env(port, repeater))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "python failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn pyepics_reads_writes_and_monitors() {
    let repeater = support::free_udp_port();
    let server = start_server(repeater);
    let out = run_python(
        &server,
        repeater,
        r#"
import time, epics
assert epics.caget('S:AI', timeout=5) == 1.5
assert epics.caget('S:LONG', timeout=5) == 42
assert epics.caget('S:STR', timeout=5) == 'hello'
assert epics.caget('S:ENUM', as_string=True, timeout=5) == 'one'
wf = epics.caget('S:WF', timeout=5)
assert len(wf) == 1000 and wf[999] == 999.0
big = epics.caget('S:BIG', timeout=20)
assert len(big) == 1_000_000 and big[-1] == 499999.5
ctrl = epics.PV('S:AI', form='ctrl')
ctrl.wait_for_connection(5)
info = ctrl.get_ctrlvars()
assert info['units'] == 'mm' and info['precision'] == 3, info
assert epics.caput('S:AI', 7.0, wait=True, timeout=5) == 1
assert epics.caget('S:AI', timeout=5) == 7.0
sev = epics.PV('S:AI', form='time'); sev.wait_for_connection(5)
assert sev.get_with_metadata(form='time')['severity'] == 1, 'HIGH is MINOR'
assert epics.caput('S:AI', 1000.0, wait=True, timeout=5) == 1
assert epics.caget('S:AI', timeout=5) == 100.0, 'clamped to the control limits'
assert epics.caput('S:ENUM', 'two', wait=True, timeout=5) == 1
assert epics.caget('S:ENUM', timeout=5) == 2
try:
    epics.caput('S:LOCKED', 1.0, wait=True, timeout=5)
    raise SystemExit('write to a read-only PV succeeded')
except epics.ca.CASeverityException as exc:
    assert 'Write access denied' in str(exc), exc
seen = []
pv = epics.PV('S:LONG', callback=lambda value=None, **kw: seen.append(value))
pv.wait_for_connection(5)
time.sleep(0.3)
for v in range(10):
    epics.caput('S:LONG', v, wait=True)
deadline = time.time() + 5
while (not seen or seen[-1] != 9) and time.time() < deadline:
    time.sleep(0.05)
assert seen and seen[-1] == 9, seen
print('OK')
"#,
    );
    assert!(out.contains("OK"));
}

#[test]
fn caproto_reads_writes_and_monitors() {
    let repeater = support::free_udp_port();
    let server = start_server(repeater);
    let out = run_python(
        &server,
        repeater,
        r#"
import time
from caproto.threading.client import Context
ctx = Context(timeout=5)
ai, s, e, wf, locked = ctx.get_pvs('S:AI', 'S:STR', 'S:ENUM', 'S:WF', 'S:LOCKED')
assert ai.read().data[0] == 1.5
r = ai.read(data_type='control')
assert r.metadata.units == b'mm' and r.metadata.precision == 3, r.metadata
t = ai.read(data_type='time')
assert t.metadata.timestamp > 1.6e9
assert s.read().data == [b'hello']
assert list(e.read(data_type='control').metadata.enum_strings) == [b'zero', b'one', b'two']
assert list(wf.read().data[:3]) == [0.0, 1.0, 2.0]
ai.write([2.5], wait=True)
assert ai.read().data[0] == 2.5
s.write(b'pvloom', wait=True)
assert s.read().data == [b'pvloom']
try:
    reply = locked.write([1.0], wait=True, timeout=3)
    # caproto hands back the refusal as the reply's status instead of raising.
    assert reply.status.name == 'ECA_NOWTACCESS', reply
except Exception as exc:
    print('refused:', type(exc).__name__, exc)
assert locked.read().data[0] == 3.0
assert not locked.access_rights & 2, locked.access_rights
values = []
sub = ai.subscribe(data_type='time')
cb = lambda sub, response: values.append(response.data[0])
sub.add_callback(cb)
time.sleep(0.3)
for v in (3.0, 4.0, 5.0):
    ai.write([v], wait=True)
deadline = time.time() + 5
while (not values or values[-1] != 5.0) and time.time() < deadline:
    time.sleep(0.05)
assert values[-1] == 5.0, values
print('OK')
"#,
    );
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn pvloom_client_against_pvloom_server_every_class() {
    let repeater = support::free_udp_port();
    let server = start_server(repeater);
    let ctx =
        pvloom_ca::client::Context::builder().config(support::client_config(server.port(), repeater)).build().unwrap();
    for name in ["S:AI", "S:LONG", "S:STR", "S:ENUM", "S:WF"] {
        let pv = ctx.get_pv(name);
        for class in [
            pvloom_ca::proto::DbrClass::Plain,
            pvloom_ca::proto::DbrClass::Status,
            pvloom_ca::proto::DbrClass::Time,
            pvloom_ca::proto::DbrClass::Graphic,
            pvloom_ca::proto::DbrClass::Control,
        ] {
            pv.read_with(pvloom_ca::client::ReadOptions::class(class))
                .unwrap_or_else(|e| panic!("{name} {class:?}: {e}"));
        }
    }
    let start = Instant::now();
    assert!(start.elapsed() < Duration::from_secs(30));
}
