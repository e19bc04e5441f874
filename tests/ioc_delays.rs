//! Delayed processing as EPICS base does it — calcout's `ODLY` (`DLYA` 1 then 0, the
//! output and the forward link after the delay, a put while active processing the record
//! once more afterwards) and seq's `DLYn` (groups in order, each after its delay, `PACT`
//! until the last) — served by `pvloom ioc` and by EPICS base's own IOC
//! (tests/peers/base_iocsh.py) from the same database. pyepics monitors both: the same
//! events in the same order with the same values and severities, and delays within
//! generous bounds on both (the machine running the tests may be loaded).

mod support;

use support::TwoIocs;

/// Seconds calcout `CO` waits before writing.
const ODLY: f64 = 1.0;
/// seq `SQ`'s delays of groups 0, 1 and 2.
const DLY: [f64; 3] = [0.4, 0.7, 0.0];

const DB: &str = r#"
record(ao, "$(P)SRC") { field(VAL, "1") }
record(ao, "$(P)DEST") { }
record(calc, "$(P)AFTER") { field(CALC, "VAL+1") }
record(calcout, "$(P)CO") {
    field(INPA, "$(P)SRC") field(CALC, "A+1") field(ODLY, "1.0")
    field(OUT, "$(P)DEST PP") field(FLNK, "$(P)AFTER")
}
record(ao, "$(P)S0") { }
record(ao, "$(P)S1") { }
record(ao, "$(P)S2") { }
record(calc, "$(P)AFTER2") { field(CALC, "VAL+1") }
record(seq, "$(P)SQ") {
    field(DLY0, "0.4") field(DO0, "1") field(LNK0, "$(P)S0 PP")
    field(DLY1, "0.7") field(DOL1, "$(P)SRC") field(LNK1, "$(P)S1 PP")
    field(DLY2, "0") field(DO2, "3") field(LNK2, "$(P)S2 PP")
    field(FLNK, "$(P)AFTER2")
}
"#;

/// Monitors every record of the test, then: a calcout processing, a processing asked for
/// while the first waits (processed again after it), and a seq processing. Prints the
/// events (seconds after the start of their step, channel, value, severity), what was
/// read while each was under way, and the time stamps' relations.
const SCRIPT: &str = r#"
import json, sys, threading, time, epics
P = sys.argv[1]
lock = threading.Lock()
events = []
start = [time.time()]
def on_change(pvname=None, value=None, severity=None, timestamp=None, **kw):
    with lock:
        events.append([time.time() - start[0], pvname[len(P):], float(value), int(severity), timestamp])
names = ["CO.DLYA", "CO", "DEST", "AFTER", "S0", "S1", "S2", "SQ", "AFTER2"]
pvs = [epics.PV(P + n, form='time', callback=on_change) for n in names]
for pv in pvs:
    assert pv.wait_for_connection(5), pv.pvname
# Every subscription's first update in, and then some quiet, before the steps.
deadline = time.time() + 10
while time.time() < deadline and len({e[1] for e in events}) < len(names):
    time.sleep(0.05)
time.sleep(0.5)
get = lambda n: epics.caget(P + n, use_monitor=False, timeout=5)
def step(action, settle):
    with lock:
        events.clear()
        start[0] = time.time()
    began = time.time()
    seen = action()
    time.sleep(settle)
    with lock:
        return {"seen": seen, "events": [e[:4] for e in events], "stamps": {e[1]: e[4] for e in events},
                "began": began}
out = {}
def calcout_once():
    epics.caput(P + "CO.PROC", 1)
    time.sleep(0.3)
    return [get("CO.PACT"), get("CO.DLYA"), get("DEST"), get("AFTER")]
out["calcout"] = step(calcout_once, 2.0)
def calcout_twice():
    epics.caput(P + "CO.PROC", 1)
    time.sleep(0.3)
    epics.caput(P + "SRC", 5)
    epics.caput(P + "CO.PROC", 1)
    time.sleep(0.1)
    return [get("CO.PACT"), get("CO.RPRO"), get("DEST")]
out["rpro"] = step(calcout_twice, 3.0)
def seq_once():
    epics.caput(P + "SRC", 8)
    epics.caput(P + "SQ.PROC", 1)
    time.sleep(0.2)
    return [get("SQ.PACT"), get("S0"), get("S1")]
out["seq"] = step(seq_once, 2.5)
began = time.time()
epics.caput(P + "CO.PROC", 1, wait=True, timeout=10)
out["put_wait"] = time.time() - began
began = time.time()
epics.caput(P + "SQ.PROC", 1, wait=True, timeout=10)
out["seq_put_wait"] = time.time() - began
print(json.dumps(out))
"#;

fn run(env: &[(&str, String)]) -> serde_json::Value {
    support::run_python(SCRIPT, &["DLY:".to_owned()], env)
}

/// A step's updates per channel: channel → (value, severity)s.
type Updates = std::collections::BTreeMap<String, Vec<(f64, i64)>>;

/// The events of a step per channel, without their times: channel → (value, severity)s.
/// Events of different channels posted by one processing may arrive in any order.
///
/// `DLYA` is compared apart (see [`dlya_matches`]).
fn sequences(step: &serde_json::Value) -> Updates {
    let mut by_channel = Updates::new();
    for e in step["events"].as_array().unwrap() {
        let channel = e[1].as_str().unwrap();
        if channel != "CO.DLYA" {
            by_channel.entry(channel.to_owned()).or_default().push((e[2].as_f64().unwrap(), e[3].as_i64().unwrap()));
        }
    }
    by_channel
}

/// The same updates per channel, or — on a loaded machine — one side missing some
/// intermediate ones: a server's queue to a slow client keeps the newest update of a
/// subscription (pvloom's outbox always, base's event queue when full), so what may go
/// missing is an update followed by another of the same channel; the last ones agree.
fn same_or_merged(ours: &Updates, theirs: &Updates) -> bool {
    fn within(short: &[(f64, i64)], long: &[(f64, i64)]) -> bool {
        let mut rest = long.iter();
        short.iter().all(|e| rest.any(|l| l == e))
    }
    ours.len() == theirs.len()
        && ours.iter().all(|(channel, a)| {
            let Some(b) = theirs.get(channel) else { return false };
            a == b || (a.last() == b.last() && (within(a, b) || within(b, a)))
        })
}

/// `DLYA`'s values in order, consecutive repeats merged.
fn dlya(step: &serde_json::Value) -> Vec<f64> {
    let mut values: Vec<f64> = step["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e[1] == "CO.DLYA")
        .map(|e| e[2].as_f64().unwrap())
        .collect();
    values.dedup();
    values
}

/// `DLYA` goes 1 then 0 on both, each delay. Two things differ by design:
/// * its severity: base posts `DLYA` 0 before the calcout commits its alarm; pvloom posts
///   a processing's changes when it is over, with the record's severity of then;
/// * pvloom's outbox holds the newest update per subscription: `DLYA` 0 followed in the
///   same instant by 1 (a reprocessing starting as the delay ends) may reach a client as
///   the 1 only. Base's scanOnce task runs the reprocessing a moment later.
fn dlya_matches(ours: &serde_json::Value, theirs: &serde_json::Value) -> bool {
    let (ours, theirs) = (dlya(ours), dlya(theirs));
    let collapsed = ours.len() == 2 && theirs.len() == 4;
    ours == theirs || (collapsed && ours == [1.0, 0.0] && theirs == [1.0, 0.0, 1.0, 0.0])
}

/// Seconds after the start of the step of the `nth` event (0-based) of `channel`.
fn when(step: &serde_json::Value, channel: &str, nth: usize) -> f64 {
    step["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e[1] == channel)
        .nth(nth)
        .unwrap_or_else(|| panic!("no event {nth} of {channel} in {step}"))[0]
        .as_f64()
        .unwrap()
}

/// What is measured of one server: the delays, in seconds.
#[derive(Debug)]
struct Delays {
    /// From `DLYA` 1 to the output `DEST`.
    output: f64,
    /// From `DLYA` 1 to `DLYA` 0.
    dlya: f64,
    /// A processing asked for while the first waited: from the first `DLYA` 1 to the
    /// second output (two delays).
    rpro_output: f64,
    /// From the seq's start to each group's output, and to its forward link.
    groups: [f64; 3],
    forward: f64,
    /// How long a `caput(wait=True)` to the calcout took.
    put_wait: f64,
}

fn measure(name: &str, run: &serde_json::Value) -> Delays {
    let calcout = &run["calcout"];
    let (rpro, seq) = (&run["rpro"], &run["seq"]);
    let delays = Delays {
        output: when(calcout, "DEST", 0) - when(calcout, "CO.DLYA", 0),
        dlya: when(calcout, "CO.DLYA", 1) - when(calcout, "CO.DLYA", 0),
        rpro_output: when(rpro, "DEST", 0) - when(rpro, "CO.DLYA", 0),
        groups: [when(seq, "S0", 0), when(seq, "S1", 0), when(seq, "S2", 0)],
        forward: when(seq, "AFTER2", 0),
        put_wait: run["put_wait"].as_f64().unwrap(),
    };
    eprintln!("{name}: {delays:?}");
    let bound = |what: &str, value: f64, low: f64, high: f64| {
        assert!((low..=high).contains(&value), "{name}: {what} took {value:.3} s, expected {low}..{high}");
    };
    bound("ODLY", delays.output, ODLY - 0.05, ODLY + 0.8);
    bound("DLYA 1 → 0", delays.dlya, ODLY - 0.05, ODLY + 0.8);
    bound("two ODLYs, the reprocessing's output", delays.rpro_output, 2.0 * ODLY - 0.05, 2.0 * ODLY + 1.2);
    assert!(when(calcout, "AFTER", 0) >= when(calcout, "DEST", 0), "{name}: the forward link after the output");
    bound("seq group 0", delays.groups[0], DLY[0] - 0.05, DLY[0] + 0.8);
    bound("seq group 1 after 0", delays.groups[1] - delays.groups[0], DLY[1] - 0.05, DLY[1] + 0.8);
    bound("seq group 2 after 1", delays.groups[2] - delays.groups[1], DLY[2], DLY[2] + 0.5);
    assert!(delays.forward >= delays.groups[2], "{name}: seq's forward link came before its last group");
    // Time stamps: the output is stamped when written, as the calcout is then (base reads
    // the clock again for DEST, microseconds later; pvloom stamps a chain with one time).
    let stamps = &calcout["stamps"];
    let began = calcout["began"].as_f64().unwrap();
    let (dest, co) = (stamps["DEST"].as_f64().unwrap(), stamps["CO"].as_f64().unwrap());
    assert!((0.0..0.05).contains(&(dest - co)), "{name}: DEST stamped {dest}, CO {co}: in the same chain");
    assert!(stamps["CO"].as_f64().unwrap() >= began + ODLY - 0.05, "{name}: CO stamped at its output");
    delays
}

#[test]
fn calcout_odly_and_seq_dlyn_delay_as_in_epics_base() {
    let iocs = TwoIocs::start(
        "delays",
        &[("delays.db", DB), ("st.cmd", "dbLoadRecords(\"delays.db\", \"P=DLY:\")\niocInit\n")],
    );
    let ours = run(&iocs.env);
    let theirs = run(&iocs.base_env);
    for step in ["calcout", "rpro", "seq"] {
        // The records a step processes; on a loaded machine a late first update of another
        // record's subscription can land in a step's window.
        let concerned: &[&str] =
            if step == "seq" { &["SQ", "S0", "S1", "S2", "AFTER2"] } else { &["CO", "DEST", "AFTER"] };
        let only = |u: Updates| -> Updates { u.into_iter().filter(|(c, _)| concerned.contains(&c.as_str())).collect() };
        assert!(
            same_or_merged(&only(sequences(&ours[step])), &only(sequences(&theirs[step]))),
            "{step}: the events differ from base's\npvloom: {}\nbase: {}",
            ours[step],
            theirs[step]
        );
        assert_eq!(ours[step]["seen"], theirs[step]["seen"], "{step}: read while under way");
        assert!(
            dlya_matches(&ours[step], &theirs[step]),
            "{step}: DLYA pvloom {:?} base {:?}",
            dlya(&ours[step]),
            dlya(&theirs[step])
        );
    }
    // The comparison means something only if the delays happened.
    assert_eq!(ours["calcout"]["seen"], serde_json::json!([1, 1, 0.0, 0.0]), "PACT, DLYA, DEST, AFTER mid-delay");
    assert_eq!(ours["rpro"]["seen"], serde_json::json!([1, 1, 2.0]), "PACT, RPRO, DEST");
    assert_eq!(ours["seq"]["seen"], serde_json::json!([1, 0.0, 0.0]), "PACT, S0, S1 before group 0");
    let pvloom = measure("pvloom", &ours);
    let epics = measure("base", &theirs);
    // A put with completion waits for the delayed output (base's dbPutNotify).
    eprintln!("caput(wait=True): pvloom {:.3} s, base {:.3} s", pvloom.put_wait, epics.put_wait);
    for (name, waited) in [("base", epics.put_wait), ("pvloom", pvloom.put_wait)] {
        assert!((ODLY - 0.05..ODLY + 0.8).contains(&waited), "{name}'s caput(wait=True) waited {waited:.3} s");
    }
    // And for a seq, until its last group (the sum of its delays).
    let all_groups: f64 = DLY.iter().sum();
    for (name, run) in [("base", &theirs), ("pvloom", &ours)] {
        let waited = run["seq_put_wait"].as_f64().unwrap();
        eprintln!("caput(SQ.PROC, wait=True): {name} {waited:.3} s");
        assert!((all_groups - 0.05..all_groups + 0.8).contains(&waited), "{name}'s seq put waited {waited:.3} s");
    }
}
