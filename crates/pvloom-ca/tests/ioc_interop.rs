//! An EPICS database served by pvloom, used by pyepics (libca) and caproto: every
//! record type and DBR class, access rules, and `.db` errors naming the line.

mod support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::SystemTime;

use pvloom_ca::client::{DbrClass, ReadOptions};
use pvloom_ca::server::db::{Database, Macros, ParseOptions};
use pvloom_ca::server::{AccessRules, DbIoc, Server, ServerConfig};

fn serve(prefix: &str, rules: &str, repeater: u16) -> (Server, std::sync::Arc<DbIoc>) {
    let text = std::fs::read_to_string(support::workspace_root().join("tests/data/every_record.db")).unwrap();
    let mut db = Database::new();
    let macros = Macros::parse(&format!("P={prefix}")).unwrap();
    db.load(&text, "every_record.db", &macros, &ParseOptions::default(), SystemTime::now()).unwrap();
    let config = ServerConfig {
        interface: Ipv4Addr::LOCALHOST,
        port: 0,
        beacon_destinations: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, repeater)],
        ..ServerConfig::default()
    };
    let server = Server::builder().config(config).access_rules(AccessRules::parse(rules).unwrap()).start().unwrap();
    let ioc = DbIoc::new(db);
    ioc.serve(&server);
    (server, ioc)
}

fn python(server: &Server, repeater: u16, script: &str) {
    let out = Command::new(support::venv_python())
        .arg("-c")
        .arg(script)
        .envs(support::server_env(server.port(), repeater))
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("OK"),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pvloom_client_reads_every_record_type_and_class() {
    let repeater = support::free_udp_port();
    let (server, _ioc) = serve("P:", "", repeater);
    let ctx =
        pvloom_ca::client::Context::builder().config(support::client_config(server.port(), repeater)).build().unwrap();
    for suffix in [
        "AI",
        "AO",
        "BI",
        "BO",
        "LI",
        "LO",
        "SI",
        "SO",
        "MBBI",
        "MBBO",
        "WF",
        "CHARWF",
        "CALC",
        "AI.EGU",
        "AI.HIHI",
        "MBBI.ZRST",
        "AI.SCAN",
    ] {
        let pv = ctx.get_pv(&format!("P:{suffix}"));
        for class in [DbrClass::Plain, DbrClass::Status, DbrClass::Time, DbrClass::Graphic, DbrClass::Control] {
            pv.read_with(ReadOptions::class(class)).unwrap_or_else(|e| panic!("{suffix} {class:?}: {e}"));
        }
    }
}

#[test]
fn pyepics_every_record_type() {
    let repeater = support::free_udp_port();
    let (server, _ioc) = serve("Q:", "Q:LO READ\n", repeater);
    python(
        &server,
        repeater,
        r#"
import time, epics
from epics import dbr
assert epics.caget('Q:AI', timeout=5) == 1.5
assert epics.caget('Q:AO') == 2.5
assert epics.caget('Q:BI', as_string=True) == 'On'
assert epics.caget('Q:LI') == 42
assert epics.caget('Q:SI') == 'hello'
assert epics.caget('Q:MBBI', as_string=True) == 'one'
assert epics.caget('Q:MBBO', as_string=True) == 'blue'
assert epics.caget('Q:AI.EGU') == 'mm'
assert epics.caget('Q:AI.DESC') == 'analog in'
for form in ('native', 'time', 'ctrl'):
    for name in ('Q:AI', 'Q:BI', 'Q:LI', 'Q:SI', 'Q:MBBI', 'Q:WF', 'Q:CALC'):
        pv = epics.PV(name, form=form, auto_monitor=False)
        assert pv.wait_for_connection(5), name
        assert pv.get(timeout=5, use_monitor=False) is not None, (name, form)
ctrl = epics.PV('Q:AI', form='ctrl'); ctrl.wait_for_connection(5)
v = ctrl.get_ctrlvars(timeout=5)
assert v['units'] == 'mm' and v['precision'] == 3 and v['upper_alarm_limit'] == 8.0, v
assert epics.caput('Q:AI', 9.0, wait=True) == 1
t = epics.PV('Q:AI', form='time'); t.wait_for_connection(5)
meta = t.get_with_metadata(form='time', use_monitor=False)
assert meta['severity'] == 2 and meta['status'] == 3, meta  # HIHI MAJOR
assert epics.caput('Q:AO', 500.0, wait=True) == 1
assert epics.caget('Q:AO') == 100.0, 'DRVH clamps'
assert epics.caput('Q:MBBO', 'green', wait=True) == 1
assert epics.caget('Q:MBBO') == 1
assert epics.caput('Q:SO', 'pvloom', wait=True) == 1
assert epics.caget('Q:SO') == 'pvloom'
assert epics.caput('Q:WF', [1.0, 2.0, 3.0], wait=True) == 1
wf = epics.caget('Q:WF', use_monitor=False); assert list(wf[:3]) == [1.0, 2.0, 3.0] and all(x == 0 for x in wf[3:]), wf
try:
    epics.caput('Q:LO', 1, wait=True, timeout=5)
    raise SystemExit('access rule ignored')
except epics.ca.CASeverityException as exc:
    assert 'Write access denied' in str(exc)
seen = []
m = epics.PV('Q:CALC', callback=lambda value=None, **kw: seen.append(value))
m.wait_for_connection(5)
time.sleep(1.0)
assert len(seen) >= 5, seen  # scanned at 10 Hz
time.sleep(0.3)
assert epics.caget('Q:SUM', use_monitor=False) == 43, 'calc link input A reads Q:LI'
print('OK')
"#,
    );
}

#[test]
fn caproto_every_record_type() {
    let repeater = support::free_udp_port();
    let (server, _ioc) = serve("C:", "C:LO READ\n", repeater);
    python(
        &server,
        repeater,
        r#"
import time
from caproto.threading.client import Context
ctx = Context(timeout=5)
names = ['C:AI', 'C:AO', 'C:BI', 'C:BO', 'C:LI', 'C:LO', 'C:SI', 'C:SO', 'C:MBBI', 'C:MBBO', 'C:WF', 'C:CHARWF', 'C:CALC']
pvs = ctx.get_pvs(*names)
for pv in pvs:
    for dt in ('native', 'status', 'time', 'graphic', 'control'):
        pv.read(data_type=dt)
ai = pvs[0]
assert ai.read(data_type='control').metadata.units == b'mm'
assert list(pvs[8].read(data_type='control').metadata.enum_strings)[:3] == [b'zero', b'one', b'two']
pvs[1].write([3.5], wait=True)
assert pvs[1].read().data[0] == 3.5
reply = pvs[5].write([1], wait=True)
assert reply.status.name == 'ECA_NOWTACCESS' or not (pvs[5].access_rights & 2), reply
values = []
sub = pvs[12].subscribe(data_type='time')
cb = lambda sub, response: values.append(response.data[0])
sub.add_callback(cb)
time.sleep(1.0)
assert len(values) >= 5, values
print('OK')
"#,
    );
}

#[test]
fn db_errors_name_file_line_and_reason() {
    let bad = "record(ai, \"X\") {\n    field(EGU, \"mm\")\n    field(NOPE, \"1\")\n}\n";
    let err =
        Database::new().load(bad, "bad.db", &Macros::new(), &ParseOptions::default(), SystemTime::now()).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("bad.db:3:"), "{text}");
    assert!(text.contains("NOPE"), "{text}");
}

#[test]
fn acf_groups_refuse_writes_with_the_right_status() {
    let repeater = support::free_udp_port();
    let db_text = "record(ao, \"A:OPEN\") { field(VAL, \"1\") }\n\
                   record(ao, \"A:RO\") { field(ASG, \"RO\") field(VAL, \"2\") }\n\
                   record(ao, \"A:OPS\") { field(ASG, \"OPS\") field(VAL, \"3\") }\n";
    let acf = "UAG(ops) { somebody_else }\n\
               ASG(DEFAULT) { RULE(1, WRITE) }\n\
               ASG(RO) { RULE(1, READ) }\n\
               ASG(OPS) { RULE(1, WRITE) { UAG(ops) } RULE(1, READ) }\n";
    let mut db = Database::new();
    db.load(db_text, "acf.db", &Macros::new(), &ParseOptions::default(), SystemTime::now()).unwrap();
    let config = ServerConfig {
        interface: Ipv4Addr::LOCALHOST,
        port: 0,
        beacon_destinations: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, repeater)],
        ..ServerConfig::default()
    };
    let server = Server::builder().config(config).access_rules(AccessRules::from_acf(acf).unwrap()).start().unwrap();
    let ioc = DbIoc::new(db);
    ioc.serve(&server);
    python(
        &server,
        repeater,
        r#"
import epics
assert epics.caput('A:OPEN', 5.0, wait=True, timeout=5) == 1
assert epics.caget('A:OPEN', use_monitor=False) == 5.0
for name in ('A:RO', 'A:OPS'):
    pv = epics.PV(name); pv.wait_for_connection(5)
    assert pv.read_access and not pv.write_access, name
    try:
        epics.caput(name, 9.0, wait=True, timeout=5)
        raise SystemExit(name + ': write allowed')
    except epics.ca.CASeverityException as exc:
        assert 'Write access denied' in str(exc), exc
print('OK')
"#,
    );
}
