//! `pvloom ioc st.cmd` on a real-world-shaped IOC directory, beside EPICS base's own
//! IOC running the same st.cmd through base's iocsh (tests/peers/base_iocsh.py, on
//! epicscorelibs): every PV read with pyepics must match. Also softIoc's `-m`/`-d`/`-x`
//! flags, the exit record and SIGTERM.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Proc, Scratch, free_port, free_udp_port, strip_ansi, venv_python};

fn pvloom(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Proc {
    Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_pvloom"))
            .current_dir(dir)
            .arg("ioc")
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str()))),
    )
}

/// Reads `names` with pyepics; returns one JSON object name → [value, severity, status,
/// write access]
/// (`value` as pyepics gives it: numbers, strings, enums as their strings).
fn read_all(env: &[(&str, String)], names: &[&str]) -> serde_json::Value {
    let script = r#"
import json, sys, epics
out = {}
for name in sys.argv[1:]:
    pv = epics.PV(name, form='ctrl')
    assert pv.wait_for_connection(5), name
    v = pv.get(use_monitor=False, as_string=(pv.type.endswith('enum')), timeout=5)
    if hasattr(v, 'tolist'):
        v = v.tolist()
    out[name] = [v, pv.severity, pv.status, pv.write_access]
print(json.dumps(out))
"#;
    let started = Instant::now();
    let args: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let out = support::run_python(script, &args, env);
    assert!(started.elapsed() < SCRIPT_LIMIT, "the client's exit took {:?}", started.elapsed());
    out
}

/// libca's exit closes its circuits and waits for the server to close its side; when
/// pvloom's server missed a FIN that came with the last data, that wait was
/// EPICS_CA_CONN_TMO (30 s). A script is far quicker than that.
const SCRIPT_LIMIT: Duration = Duration::from_secs(20);

/// Runs a pyepics script; it must print OK.
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

/// An IOC directory as an EPICS user keeps it: st.cmd, an included common.cmd, a dbd
/// directory, databases and a substitutions file with a pattern and globals.
fn ioc_directory(test: &str) -> Scratch {
    let dir = Scratch::new(test);
    dir.file(
        "st.cmd",
        r#"#!../../bin/linux-x86_64/softIoc
# A test IOC: environment, databases, a template, then serving.
epicsEnvSet("IOC", "TESTIOC")
epicsEnvSet("P", "TST$(SUFFIX=):")
epicsEnvSet "TOP" "."
cd "${TOP}"

#- dbd and registration, as a built softIoc has them
dbLoadDatabase "dbd/softIoc.dbd"
softIoc_registerRecordDeviceDriver pdbbase

< common.cmd

cd db
dbLoadRecords("ioc.db", "P=$(P),NAME=$(IOC),LOC=$(LOCATION)")
dbLoadTemplate("temps.substitutions", "P=$(P)")
myDriverConfig("/dev/ttyS0", 9600)
cd ..

asSetSubstitutions("RO=READ")
asSetFilename("site.acf")
iocInit

dbpf $(P)SETPOINT 12.5
dbpf "$(P)ENABLE" "On"
dbl ai
dbgf $(P)T2.DESC
dbpf $(P)MODE 2
"#,
    );
    dir.file("site.acf", "ASG(DEFAULT) {\n    RULE(1, WRITE)\n}\nASG(LOCKED) {\n    RULE(1, $(RO))\n}\n");
    dir.file("common.cmd", "# site settings\nepicsEnvSet(\"LOCATION\", \"hutch 1, rack 2\")\n");
    dir.file("dbd/softIoc.dbd", "# record types come with the IOC (base.dbd)\n");
    dir.file(
        "db/ioc.db",
        r#"record(stringin, "$(P)NAME") {
    field(DESC, "IOC name")
    field(ASG, "LOCKED")
    field(VAL, "$(NAME)")
}
record(stringin, "$(P)LOCATION") {
    field(VAL, "$(LOC)")
}
record(ao, "$(P)SETPOINT") {
    field(DESC, "A setpoint")
    field(EGU, "V")
    field(PREC, "2")
    field(DRVH, "100")
    field(DRVL, "-100")
    field(VAL, "1.5")
    field(PINI, "YES")
    field(FLNK, "$(P)DOUBLED")
}
record(calc, "$(P)DOUBLED") {
    field(INPA, "$(P)SETPOINT")
    field(CALC, "A*2")
}
record(bo, "$(P)ENABLE") {
    field(ZNAM, "Off")
    field(ONAM, "On")
    field(PINI, "YES")
}
record(mbbo, "$(P)MODE") {
    field(ZRST, "idle")
    field(ONST, "run")
    field(TWST, "service")
    field(PINI, "YES")
}
record(longout, "$(P)COUNT") {
    field(VAL, "$(COUNT=7)")
    field(PINI, "YES")
}
"#,
    );
    dir.file(
        "db/temps.db",
        r#"record(ai, "$(P)T$(N)") {
    field(DESC, "$(DESC)")
    field(EGU, "$(EGU)")
    field(HIGH, "$(HIGH)")
    field(HSV, "MINOR")
    field(VAL, "$(INIT=20)")
    field(PINI, "YES")
}
"#,
    );
    dir.file(
        "db/temps.substitutions",
        r#"# temperatures
global { EGU = "degC" }
file "temps.db" {
    pattern { N, DESC, HIGH }
    { 1, "Inlet", 30 }
    { 2, "Outlet, rear", 45 }
    global { EGU = K }
    { 3, Cryo, 80 }
}
file temps.db {
    { N=4, DESC="Plain form", HIGH=10, INIT=12 }
}
"#,
    );
    dir
}

const NAMES: &[&str] = &[
    "TST:NAME",
    "TST:NAME.DESC",
    "TST:LOCATION",
    "TST:SETPOINT",
    "TST:SETPOINT.EGU",
    "TST:SETPOINT.DESC",
    "TST:DOUBLED",
    "TST:ENABLE",
    "TST:MODE",
    "TST:COUNT",
    "TST:T1",
    "TST:T1.DESC",
    "TST:T1.EGU",
    "TST:T1.HIGH",
    "TST:T2.DESC",
    "TST:T2.EGU",
    "TST:T3.EGU",
    "TST:T3.DESC",
    "TST:T4",
    "TST:T4.DESC",
    "TST:T4.EGU",
    "TST:T4.SEVR",
];

#[test]
fn st_cmd_serves_what_epics_base_serves() {
    let dir = ioc_directory("stcmd");
    let (port, base_port) = (free_port(), free_port());
    let env = support::loopback_env(port, free_udp_port());
    let base_env = support::loopback_env(base_port, free_udp_port());

    let started = Instant::now();
    let mut ioc = pvloom(&dir.0, &["st.cmd"], &env);
    let served = ioc.wait_line("served on port");
    assert!(served.ends_with(&format!("port {port}")), "{served}");
    ioc.wait_line("\"service\""); // the last dbpf's echo: the script ran to its end
    let startup = started.elapsed();

    let base = support::start_base_ioc(&dir.0, &base_env, false);

    let ours = read_all(&env, NAMES);
    let theirs = read_all(&base_env, NAMES);
    for name in NAMES {
        assert_eq!(ours[name], theirs[name], "{name}: pvloom {} vs base {}", ours[name], theirs[name]);
    }
    // The script's effects, spelled out.
    // The comma in "LOC=hutch 1, rack 2" ends the macro's value, in base as here.
    assert_eq!(ours["TST:LOCATION"][0], "hutch 1");
    assert_eq!(ours["TST:SETPOINT"][0], 12.5);
    assert_eq!(ours["TST:DOUBLED"][0], 25.0, "the forward link follows dbpf");
    assert_eq!(ours["TST:ENABLE"][0], "On");
    assert_eq!(ours["TST:MODE"][0], "service");
    assert_eq!(ours["TST:T2.DESC"][0], "Outlet, rear");
    assert_eq!(ours["TST:T3.EGU"][0], "K", "a global inside a template applies to later rows");
    assert_eq!(ours["TST:NAME"][3], false, "asSetFilename's LOCKED group, RULE(1, $(RO)) substituted");
    assert_eq!(ours["TST:SETPOINT"][3], true);
    // dbl and dbgf print what base prints.
    for out in [ioc.stdout(), base.stdout()] {
        assert!(out.contains("dbl ai\nTST:T1\nTST:T2\nTST:T3\nTST:T4\n"), "{out}");
        assert!(out.contains("DBF_STRING:         \"Outlet, rear\""), "{out}");
    }

    // The unknown command: iocsh's own message, file and line; the script went on.
    let unknown = "ERROR st.cmd line 17: Command 'myDriverConfig' not registered.";
    assert!(ioc.stderr().contains(unknown), "pvloom stderr:\n{}", ioc.stderr());
    assert!(base.stderr().contains(unknown) || base.stdout().contains(unknown), "base:\n{}", base.stderr());
    // Script lines are echoed as iocsh echoes them (after expansion).
    let echo = "dbLoadRecords(\"ioc.db\", \"P=TST:,NAME=TESTIOC,LOC=hutch 1, rack 2\")";
    assert!(ioc.stdout().contains(echo) && base.stdout().contains(echo), "{}", ioc.stdout());
    assert!(startup < Duration::from_secs(5), "startup took {startup:?}");

    // SIGTERM stops it cleanly.
    let status = Command::new("kill").args(["-TERM", &ioc.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(ioc.wait_exit(Duration::from_secs(5)), Some(0), "{}", ioc.stderr());
}

#[test]
fn softioc_flags_macros_databases_and_the_exit_record() {
    let dir = Scratch::new("flags");
    dir.file(
        "db/x.db",
        "record(ao, \"$(P)X\") { field(VAL, \"$(V=1)\") field(PINI, YES) field(ASG, \"$(G=DEFAULT)\") }\n",
    );
    dir.file("st.cmd", "dbpf M2:X 9\n");
    dir.file("site.acf", "ASG(DEFAULT) {\n    RULE(1, WRITE)\n}\nASG(LOCKED) {\n    RULE(1, $(RO))\n}\n");
    let env = support::loopback_env(free_port(), free_udp_port());
    let mut ioc = pvloom(
        &dir.0,
        &[
            "-D",
            "dbd/softIoc.dbd",
            "-m",
            "P=M1:",
            "-d",
            "db/x.db",
            "-m",
            "P=M2:,V=4,G=LOCKED,RO=READ",
            "-d",
            "db/x.db",
            "-a",
            "site.acf",
            "-x",
            "EXT",
            "-S",
        ],
        &env,
    );
    ioc.wait_line("served on port");
    python(
        &env,
        r#"
import epics
assert epics.caget('M1:X', timeout=5) == 1.0, 'the first -m applies to the first -d'
assert epics.caget('M2:X', timeout=5) == 4.0, 'a later -m replaces it for the next -d'
m1, m2 = epics.PV('M1:X'), epics.PV('M2:X')
assert m1.wait_for_connection(5) and m2.wait_for_connection(5)
assert m1.write_access and not m2.write_access, '-a reads the .acf with the -m before it'
assert epics.caget('EXT:BaseVersion', timeout=5), 'the -x version record'
assert epics.caget('EXT:exit.DESC', timeout=5) == 'Exit subroutine'
epics.caput('EXT:exit.A', 2, wait=False)
epics.ca.flush_io()
print('OK')
"#,
    );
    assert_eq!(ioc.wait_exit(Duration::from_secs(5)), Some(1), "a non-zero A exits with status 1");

    // With a script: the -d files load first, the script runs, then iocInit.
    let mut ioc = pvloom(&dir.0, &["-m", "P=M2:", "-d", "db/x.db", "-x", "EXT2", "st.cmd"], &env);
    ioc.wait_line("served on port");
    python(
        &env,
        r#"
import epics
assert epics.caget('M2:X', timeout=5) == 1.0
epics.caput('EXT2:exit', 1, wait=False)
epics.ca.flush_io()
print('OK')
"#,
    );
    assert_eq!(ioc.wait_exit(Duration::from_secs(5)), Some(0), "A is 0: exit status 0");
    assert!(
        ioc.stderr().contains("dbpf only works after iocInit")
            || ioc.stdout().contains("dbpf only works after iocInit")
    );

    // Nothing to do is an error, as softIoc -S says.
    let mut idle = pvloom(&dir.0, &["-S"], &env);
    assert_eq!(idle.wait_exit(Duration::from_secs(5)), Some(1));
    assert!(idle.stderr().contains("Nothing to do!"), "{}", idle.stderr());
}

#[test]
fn interactive_shell_on_a_terminal() {
    let dir = Scratch::new("tty");
    dir.file("x.db", "record(ao, \"T:X\") { field(VAL, 3) }\n");
    let env = support::loopback_env(free_port(), free_udp_port());
    // util-linux `script` gives the IOC a pseudo-terminal, as an operator's shell would.
    let command = format!("{} ioc -d x.db", env!("CARGO_BIN_EXE_pvloom"));
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(&dir.0)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script(1)");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    use std::io::Write as _;
    stdin.write_all(b"dbgf T:X\ndbpf T:X 7\nbogus 1\nexit\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    let text = strip_ansi(&reader.join().unwrap()).replace('\r', "");
    assert!(status.is_some_and(|s| s.success()), "exit did not stop the IOC cleanly: {status:?}\n{text}");
    assert!(text.contains("epics> DBF_DOUBLE:         3\n"), "{text}");
    assert!(text.contains("epics> DBF_DOUBLE:         7\n"), "{text}");
    assert!(text.contains("Command 'bogus' not registered."), "{text}");
}
