//! `pvloom ioc` beside real EPICS clients (pyepics' libca, caproto): searches for
//! names it lacks, dynamic-size arrays, `.acf` access security, several IOCs on one
//! host, refused CALC expressions, and plain-text logs.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Scratch, free_port, free_udp_port, venv_python};

/// A `pvloom ioc` process, killed (by its PID, through `Child`) when dropped.
struct Ioc {
    child: Child,
    /// The TCP port it announced.
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Ioc {
    fn start(db: &Path, args: &[&str], env: &[(&str, String)]) -> Ioc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pvloom"))
            .arg("ioc")
            .arg(db)
            .args(args)
            .args(["--seconds", "120"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (mut pipe, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        std::thread::spawn(move || for _ in lines {});
        let port = first.rsplit_once("port ").and_then(|(_, p)| p.trim().parse().ok());
        let mut ioc = Ioc { child, port: 0, stderr };
        match port {
            Some(port) => ioc.port = port,
            None => panic!("pvloom ioc did not start: {first:?}\n{}", ioc.stderr()),
        }
        ioc
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn assert_alive(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "the IOC exited:\n{}", self.stderr());
    }
}

impl Drop for Ioc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run a Python script with the peers; it must print OK.
fn python(env: &[(&str, String)], script: &str) {
    let out = Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("OK"), "{stdout}\n{stderr}");
}

const DB: &str = r#"
record(waveform, "$(P)WF") {
    field(FTVL, "DOUBLE")
    field(NELM, "10")
}
record(waveform, "$(P)FRESH") {
    field(FTVL, "LONG")
    field(NELM, "8")
}
record(calc, "$(P)CALC") {
    field(CALC, "A+1")
    field(INPA, "2")
}
record(ao, "$(P)OPEN") {
    field(VAL, "1")
}
record(ao, "$(P)LOCKED") {
    field(VAL, "2")
    field(ASG, "LOCKED")
}
"#;

fn start(test: &str, prefix: &str, args: &[&str]) -> (Scratch, Ioc, Vec<(&'static str, String)>) {
    let scratch = Scratch::new(test);
    let db = scratch.file("test.db", DB);
    let env = support::loopback_env(free_port(), free_udp_port());
    let mut args = args.to_vec();
    let macros = format!("P={prefix}");
    args.extend(["-m", macros.as_str()]);
    let ioc = Ioc::start(&db, &args, &env);
    (scratch, ioc, env)
}

#[test]
fn searches_for_missing_names_get_no_udp_reply_and_not_found_over_tcp() {
    let (_scratch, mut ioc, env) = start("search", "S:", &[]);
    python(
        &env,
        r#"
import os, socket
import caproto as ca
from caproto._commands import read_datagram, read_from_bytestream
port = int(os.environ['EPICS_CA_SERVER_PORT'])
V = ca.DEFAULT_PROTOCOL_VERSION
ANSWERS = (ca.SearchResponse, ca.NotFoundResponse)

udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.settimeout(1.0)
def udp_search(names):
    msg = bytes(ca.VersionRequest(0, V)) + b''.join(
        bytes(ca.SearchRequest(name, cid, V, reply=ca.DO_REPLY)) for cid, name in names)
    udp.sendto(msg, ('127.0.0.1', port))
    got = []
    try:
        while True:
            data, addr = udp.recvfrom(65536)
            got += [c for c in read_datagram(data, addr, ca.SERVER) if isinstance(c, ANSWERS)]
    except socket.timeout:
        pass
    return got

got = udp_search([(1, 'S:MISSING')])
assert got == [], f'a UDP search for a missing name must get no reply, even with DO_REPLY: {got}'
got = udp_search([(2, 'S:WF'), (3, 'S:MISSING')])
assert len(got) == 1 and isinstance(got[0], ca.SearchResponse) and got[0].cid == 2, got

# Over TCP (a name server's client): NOT_FOUND when DO_REPLY asks for it, as rsrv.
tcp = socket.create_connection(('127.0.0.1', port), timeout=5)
tcp.sendall(bytes(ca.VersionRequest(0, V))
            + bytes(ca.SearchRequest('S:MISSING', 7, V, reply=ca.DO_REPLY))
            + bytes(ca.SearchRequest('S:WF', 8, V, reply=ca.DO_REPLY))
            + bytes(ca.SearchRequest('S:GONE', 9, V, reply=ca.NO_REPLY))
            + bytes(ca.EchoRequest()))
buf, cmds = bytearray(), []
while not any(isinstance(c, ca.EchoResponse) for c in cmds):
    chunk = tcp.recv(65536)
    assert chunk, cmds
    buf += chunk
    while True:
        buf, cmd, _ = read_from_bytestream(buf, ca.SERVER)
        if cmd is ca.NEED_DATA:
            break
        cmds.append(cmd)
answers = [c for c in cmds if isinstance(c, ANSWERS)]
assert len(answers) == 2, cmds
assert isinstance(answers[0], ca.NotFoundResponse) and answers[0].cid == 7, answers
assert isinstance(answers[1], ca.SearchResponse) and answers[1].cid == 8, answers
print('OK')
"#,
    );
    ioc.assert_alive();
}

#[test]
fn dynamic_size_subscriptions_and_reads_carry_the_current_element_count() {
    let (_scratch, mut ioc, env) = start("dynamic", "W:", &[]);
    python(
        &env,
        r#"
import time, epics
from epics import ca

def wait_for(check, what):
    deadline = time.time() + 5
    while not check():
        assert time.time() < deadline, what
        time.sleep(0.05)

# pyepics subscribes with count 0 (dynamic size).
updates, fresh = [], []
wf = epics.PV('W:WF', auto_monitor=True, callback=lambda value=None, **kw: updates.append(len(value)))
pf = epics.PV('W:FRESH', auto_monitor=True, callback=lambda value=None, **kw: fresh.append(len(value)))
assert wf.wait_for_connection(5) and pf.wait_for_connection(5)
assert wf.nelm == 10 and pf.nelm == 8, (wf.nelm, pf.nelm)
wait_for(lambda: updates and fresh, 'first updates')
assert fresh == [0], f'a never-written waveform has no elements: {fresh}'
assert updates == [0], updates
assert epics.caput('W:WF', [1.0, 2.0, 3.0], wait=True) == 1
wait_for(lambda: len(updates) >= 2, 'update after a put')
assert updates[-1] == 3, f'NORD, not NELM zero-padded: {updates}'
assert list(wf.get()) == [1.0, 2.0, 3.0], wf.get()
assert epics.caput('W:WF', [4.0, 5.0, 6.0, 7.0, 8.0], wait=True) == 1
wait_for(lambda: updates[-1] == 5, f'update to 5 elements: {updates}')

# Reads with count 0 return the current elements; a fixed count is zero-padded.
chid = ca.create_channel('W:WF')
assert ca.connect_channel(chid)
assert list(ca.get(chid, count=0)) == [4.0, 5.0, 6.0, 7.0, 8.0]
assert list(ca.get(chid, count=10)) == [4.0, 5.0, 6.0, 7.0, 8.0, 0.0, 0.0, 0.0, 0.0, 0.0]
fchid = ca.create_channel('W:FRESH')
assert ca.connect_channel(fchid)
assert len(ca.get(fchid, count=0)) == 0

from caproto.threading.client import Context
ctx = Context(timeout=5)
cwf, cfresh = ctx.get_pvs('W:WF', 'W:FRESH')
r = cwf.read(data_count=0)
assert r.header.data_count == 5 and list(r.data) == [4.0, 5.0, 6.0, 7.0, 8.0], r
r = cfresh.read(data_count=0, data_type='time')
assert r.header.data_count == 0 and len(r.data) == 0, r
counts = []
def on_update(sub, response):  # caproto holds callbacks weakly: keep a name
    counts.append(response.header.data_count)
sub = cwf.subscribe(data_type='time', data_count=0)
sub.add_callback(on_update)
wait_for(lambda: counts, 'caproto update')
assert counts == [5], counts
assert epics.caput('W:WF', [9.0, 9.5], wait=True) == 1
wait_for(lambda: counts[-1] == 2, f'caproto update to 2 elements: {counts}')
print('OK')
"#,
    );
    ioc.assert_alive();
}

/// The user name libca sends (getpwuid), and the login name if there is one.
fn user_names() -> Vec<String> {
    let out = Command::new(venv_python())
        .arg("-c")
        .arg("import os, pwd\nprint(pwd.getpwuid(os.getuid()).pw_name)\ntry:\n    print(os.getlogin())\nexcept OSError:\n    pass")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
}

#[test]
fn access_security_files_decide_writes() {
    let scratch = Scratch::new("acf");
    let users: Vec<String> = user_names().iter().map(|u| format!("\"{u}\"")).collect();
    let acf = scratch.file(
        "site.acf",
        &format!(
            r#"# EPICS access security: operators write, others read
UAG(ops) {{ {} }}
UAG(nobody) {{ "no-such-user" }}
HAG(anywhere) {{ localhost }}

ASG(DEFAULT) {{
    RULE(1, READ)
    RULE(1, WRITE, TRAPWRITE) {{
        UAG(ops)
    }}
}}
ASG(LOCKED) {{
    RULE(1, READ)
    RULE(1, WRITE) {{ UAG(nobody) }}
}}
"#,
            users.join(", ")
        ),
    );
    let (_db_dir, mut ioc, env) = start("acf-ioc", "A:", &["--access", acf.to_str().unwrap()]);
    python(
        &env,
        r#"
import epics
open_pv = epics.PV('A:OPEN'); locked = epics.PV('A:LOCKED')
assert open_pv.wait_for_connection(5) and locked.wait_for_connection(5)
assert open_pv.read_access and open_pv.write_access
assert locked.read_access and not locked.write_access
assert epics.caput('A:OPEN', 7.5, wait=True, timeout=5) == 1
assert epics.caget('A:OPEN', use_monitor=False) == 7.5
try:
    epics.caput('A:LOCKED', 9.0, wait=True, timeout=5)
    raise SystemExit('the LOCKED group of the .acf file was ignored')
except epics.ca.CASeverityException as exc:
    assert 'Write access denied' in str(exc), exc
assert epics.caget('A:LOCKED', use_monitor=False) == 2.0
print('OK')
"#,
    );
    ioc.assert_alive();
    drop(ioc);

    // The pattern-rules format still works, told apart by content.
    let rules = scratch.file("site.rules", "# pattern rules\nR:LOCKED READ\n");
    let (_db_dir, mut ioc, env) = start("rules-ioc", "R:", &["--access", rules.to_str().unwrap()]);
    python(
        &env,
        r#"
import epics
assert epics.caput('R:OPEN', 3.0, wait=True, timeout=5) == 1
try:
    epics.caput('R:LOCKED', 9.0, wait=True, timeout=5)
    raise SystemExit('rule ignored')
except epics.ca.CASeverityException as exc:
    assert 'Write access denied' in str(exc), exc
print('OK')
"#,
    );
    ioc.assert_alive();

    // A bad .acf names the line and stops the IOC from starting.
    let bad = scratch.file("bad.acf", "ASG(DEFAULT) {\n    RULE(1, MAYBE)\n}\n");
    let out = Command::new(env!("CARGO_BIN_EXE_pvloom"))
        .args(["ioc", scratch.file("x.db", DB).to_str().unwrap(), "-m", "P=B:", "--seconds", "1", "--access"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("line 2") && err.contains("MAYBE"), "{err}");
}

#[test]
fn two_iocs_on_one_port_are_both_found() {
    let scratch = Scratch::new("two");
    let db = scratch.file("test.db", DB);
    let (port, repeater) = (free_port(), free_udp_port());
    // Both IOCs configured for the same port, on every interface (a broadcast
    // reaches sockets bound to the wildcard address); clients search by loopback
    // broadcast, as clients on a subnet do.
    let env: Vec<(&str, String)> = support::loopback_env(port, repeater)
        .into_iter()
        .filter(|(k, _)| *k != "EPICS_CAS_INTF_ADDR_LIST")
        .map(|(k, v)| if k == "EPICS_CA_ADDR_LIST" { (k, "127.255.255.255".to_owned()) } else { (k, v) })
        .collect();
    let mut first = Ioc::start(&db, &["-m", "P=ONE:"], &env);
    let mut second = Ioc::start(&db, &["-m", "P=TWO:"], &env);
    assert_eq!(first.port, port);
    assert_ne!(second.port, port, "the second IOC takes another TCP port");
    python(
        &env,
        r#"
import epics
assert epics.caget('ONE:OPEN', timeout=5) == 1.0
assert epics.caget('TWO:OPEN', timeout=5) == 1.0
assert epics.caput('TWO:OPEN', 4.0, wait=True, timeout=5) == 1
assert epics.caget('TWO:OPEN', use_monitor=False) == 4.0
assert epics.caget('ONE:OPEN', use_monitor=False) == 1.0
from caproto.threading.client import Context
one, two = Context(timeout=5).get_pvs('ONE:LOCKED', 'TWO:LOCKED')
assert one.read().data[0] == 2.0 and two.read().data[0] == 2.0
print('OK')
"#,
    );
    first.assert_alive();
    second.assert_alive();
}

#[test]
fn bad_calc_expressions_are_refused_and_the_ioc_lives_on() {
    let (_scratch, mut ioc, env) = start("calc", "K:", &[]);
    python(
        &env,
        r#"
import ctypes, time, epics
from epics import ca, dbr
assert epics.caget('K:CALC.CALC') == 'A+1'

# pyepics' caput(wait=True) drops the put callback's status: ask libca for it.
statuses = []
on_put = dbr.make_callback(lambda args: statuses.append(args.status), dbr.event_handler_args)
chid = ca.create_channel('K:CALC.CALC')
assert ca.connect_channel(chid)
def put_status(text):
    del statuses[:]
    value = ctypes.create_string_buffer(text.encode(), 40)
    assert ca.libca.ca_array_put_callback(dbr.STRING, 1, chid, value, on_put, None) == dbr.ECA_NORMAL
    ca.flush_io()
    deadline = time.time() + 5
    while not statuses:
        assert time.time() < deadline, 'no put completion'
        time.sleep(0.02)
    return statuses[0]

ECA_PUTFAIL = 160
for bad in ('A+(', '2*', 'FOO(1)', ')', 'A?B', '1+' * 19):
    assert put_status(bad) == ECA_PUTFAIL, (bad, put_status(bad))
    assert epics.caget('K:CALC.CALC', use_monitor=False) == 'A+1', bad
    epics.caput('K:CALC.CALC', bad, wait=True, timeout=5)  # what pyepics users write
    assert epics.caget('K:CALC.CALC', use_monitor=False) == 'A+1', bad
assert put_status('A*3') == dbr.ECA_NORMAL
assert epics.caput('K:CALC.PROC', 1, wait=True, timeout=5) == 1
assert epics.caget('K:CALC', use_monitor=False) == 6.0

from caproto.threading.client import Context
calc = Context(timeout=5).get_pvs('K:CALC.CALC')[0]
response = calc.write(b'1+', wait=True)
assert response.status.name == 'ECA_PUTFAIL', response
response = calc.write(b'B+2', wait=True)
assert response.status.name == 'ECA_NORMAL', response
print('OK')
"#,
    );
    ioc.assert_alive();
}

#[test]
fn logs_are_plain_text_when_stderr_is_not_a_terminal() {
    let scratch = Scratch::new("logs");
    let db = scratch.file("test.db", DB);
    let mut env = support::loopback_env(free_port(), free_udp_port());
    env.push(("RUST_LOG", "info".into()));
    let mut ioc = Ioc::start(&db, &["-m", "P=L:"], &env);
    // A real client connecting and leaving logs too.
    python(&env, "import epics\nassert epics.caget('L:OPEN', timeout=5) == 1.0\nprint('OK')\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ioc.stderr().contains("CA server listening") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = ioc.stderr();
    assert!(logs.contains("CA server listening"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "ANSI escape codes in piped logs: {logs:?}");
    ioc.assert_alive();
}
