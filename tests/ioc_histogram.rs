//! histogram's `SDEL` watchdog against EPICS base's own IOC: with an `MDEL` no count
//! reaches, the counts are posted only by the watchdog, every `SDEL` seconds when they
//! changed, on both servers.

mod support;

use support::TwoIocs;

const DB: &str = r#"
record(histogram, "$(P)H") { field(NELM, "4") field(LLIM, "0") field(ULIM, "4") field(MDEL, "100") field(SDEL, "0.5") }
"#;

/// Monitors H, counts three signals, and reports when updates came (seconds after the
/// signals) and the last counts.
const SCRIPT: &str = r#"
import json, sys, time, epics
P = sys.argv[1]
seen = []
pv = epics.PV(P + "H", callback=lambda value=None, **kw: seen.append((time.time(), value.tolist())))
assert pv.wait_for_connection(5)
time.sleep(1.2)
seen.clear()
began = time.time()
for v in (0.5, 1.5, 1.7):
    assert epics.caput(P + "H.SGNL", v, wait=True, timeout=5) == 1
time.sleep(1.6)
print(json.dumps({"after": [t - began for t, _ in seen], "last": seen[-1][1] if seen else None,
                  "now": epics.caget(P + "H", use_monitor=False).tolist()}))
"#;

#[test]
fn histogram_sdel_posts_counts_as_epics_base() {
    let iocs =
        TwoIocs::start("histogram", &[("h.db", DB), ("st.cmd", "dbLoadRecords(\"h.db\", \"P=HG:\")\niocInit\n")]);
    let (ours, theirs) = iocs.each(SCRIPT, &["HG:".to_owned()]);
    eprintln!("pvloom {ours}\nbase {theirs}");
    for (name, run) in [("pvloom", &ours), ("base", &theirs)] {
        assert_eq!(run["now"], serde_json::json!([1.0, 2.0, 0.0, 0.0]), "{name}");
        assert_eq!(run["last"], run["now"], "{name}: the watchdog posted the counts");
        let after = run["after"].as_array().unwrap();
        // The signals are counted within one or two watchdog periods; nothing else posts.
        assert!((1..=2).contains(&after.len()), "{name}: {after:?}");
        assert!(after[0].as_f64().unwrap() < 1.0, "{name}: first post {after:?}");
    }
}
