//! The daemon end to end on 127.0.0.1: the captures' sampler and aggregator configuration
//! files run unchanged (ports rewritten to free ones), an aggregator pulls, re-serves and
//! stores a sampler daemon's sets, and follows the sampler daemon across a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pvloom_ldms::client::{Xprt, XprtConfig};
use pvloom_ldmsd::config::parse_str;
use pvloom_ldmsd::daemon::{Daemon, DaemonOptions, ProducerState};

fn captures() -> PathBuf {
    let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ldms-captures"));
    assert!(p.is_dir(), "the LDMS captures are missing at {}", p.display());
    p.to_path_buf()
}

fn daemon(root: &Path) -> Daemon {
    Daemon::new(DaemonOptions { proc_root: root.to_path_buf(), io_threads: 1, ..DaemonOptions::default() })
        .expect("daemon")
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn dir_names(addr: SocketAddr) -> Vec<String> {
    let rt = pvloom_core::Runtime::new().unwrap();
    let x = Xprt::connect(&rt.handle(), addr, XprtConfig::default()).expect("connect");
    let mut names: Vec<_> = x.dir().expect("dir").into_iter().map(|e| e.name).collect();
    names.sort();
    x.close();
    names
}

#[test]
fn a_captured_sampler_conf_runs_unchanged_and_serves_its_sets() {
    let conf = captures().join("ls-l-two-samplers/sampler.conf");
    let d = daemon(Path::new("/"));
    d.apply_file(&conf).expect("the capture's sampler.conf");
    let addr = d.listen(local()).unwrap();
    assert_eq!(dir_names(addr), ["localhost1/meminfo", "localhost1/vmstat"]);
    let start = d.samples();
    wait_until("two samples", Duration::from_secs(5), || d.samples() >= start + 2);
    let rt = pvloom_core::Runtime::new().unwrap();
    let x = Xprt::connect(&rt.handle(), addr, XprtConfig::default()).unwrap();
    let set = x.lookup("localhost1/meminfo", 0).unwrap().remove(0);
    let snap = set.update().unwrap();
    assert!(snap.is_consistent());
    assert!(snap.value_by_name("MemTotal").is_some());
}

#[test]
fn an_unsupported_line_names_its_file_and_line() {
    let d = daemon(Path::new("/"));
    let cmds = parse_str("load name=meminfo\nconfig name=nosuch producer=p instance=p/x\n", "bad.conf").unwrap();
    let err = d.apply_all(&cmds).unwrap_err().to_string();
    assert!(err.starts_with("bad.conf:2:"), "{err}");
    let cmds = parse_str("load name=no_such_plugin\n", "bad.conf").unwrap();
    let err = d.apply_all(&cmds).unwrap_err().to_string();
    assert!(err.contains("bad.conf:1") && err.contains("no_such_plugin"), "{err}");
}

/// The capture's aggregator.conf with its producer port pointed at `port`, plus store_csv.
fn aggregator_conf(port: u16, csv: &Path) -> String {
    let text = std::fs::read_to_string(captures().join("aggregator/aggregator.conf")).unwrap();
    let text = text.replace("port=10441", &format!("port={port}"));
    format!(
        "{text}load name=store_csv\nconfig name=store_csv path={} buffer=0\n\
         strgp_add name=s1 plugin=store_csv container=csv schema=meminfo\nstrgp_prdcr_add name=s1 regex=.*\n\
         strgp_start name=s1\n",
        csv.display()
    )
}

#[test]
fn an_aggregator_pulls_serves_stores_and_follows_a_restart() {
    let conf = captures().join("ls-l-two-samplers/sampler.conf");
    let sampler = daemon(Path::new("/"));
    sampler.apply_file(&conf).unwrap();
    let sampler_addr = sampler.listen(local()).unwrap();

    let csv = std::env::temp_dir().join(format!("pvloom-agg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&csv);
    std::fs::create_dir_all(&csv).unwrap();
    let agg = daemon(Path::new("/"));
    agg.apply_all(&parse_str(&aggregator_conf(sampler_addr.port(), &csv), "aggregator.conf").unwrap()).unwrap();
    let agg_addr = agg.listen(local()).unwrap();
    wait_until("the aggregator to serve both sets", Duration::from_secs(10), || agg.registry().len() == 2);
    assert_eq!(dir_names(agg_addr), ["localhost1/meminfo", "localhost1/vmstat"]);

    let rows = || std::fs::read_to_string(csv.join("csv/meminfo")).map(|t| t.lines().count()).unwrap_or(0);
    wait_until("stored rows", Duration::from_secs(10), || rows() >= 3);
    let text = std::fs::read_to_string(csv.join("csv/meminfo")).unwrap();
    assert!(text.starts_with("#Time,Time_usec,ProducerName,component_id,job_id,app_id,MemTotal,"), "{text}");
    assert!(text.lines().nth(1).unwrap().contains(",localhost1,1,0,0,"), "{text}");

    // The producer goes away: its sets are withdrawn; it comes back on the same port.
    drop(sampler);
    // SET_DELETE may empty the registry before the disconnect arrives: wait for both.
    wait_until("the sets to be withdrawn and the producer to be retried", Duration::from_secs(10), || {
        agg.registry().is_empty() && agg.producers()[0].state == ProducerState::Connecting
    });
    let sampler = daemon(Path::new("/"));
    sampler.apply_file(&conf).unwrap();
    sampler.listen(sampler_addr).expect("the same port again");
    wait_until("the sets to come back", Duration::from_secs(10), || agg.registry().len() == 2);
    assert!(agg.producers()[0].connects >= 2);
    drop(agg);
    let _ = std::fs::remove_dir_all(&csv);
}

#[test]
fn every_captured_conf_runs_unchanged() {
    let root = captures();
    let mut ran = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let conf = dir.join("sampler.conf");
        if !conf.is_file() {
            continue;
        }
        let d = daemon(Path::new("/"));
        d.apply_file(&conf).unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
        assert!(!d.registry().is_empty(), "{} made no set", conf.display());
        if dir.ends_with("aggregator") {
            // The run-time additions the capture made through ldmsd_controller, in order.
            let n = d.registry().len();
            d.apply_file(&dir.join("ctl-add-vmstat.conf")).unwrap();
            assert_eq!(d.registry().len(), n + 1);
            d.apply_file(&dir.join("ctl-del-vmstat.conf")).unwrap();
            assert_eq!(d.registry().len(), n);
            // The aggregator's own file: its producer is not there, so it keeps retrying.
            let agg = daemon(Path::new("/"));
            agg.apply_file(&dir.join("aggregator.conf")).unwrap();
            assert_eq!(agg.producers().len(), 1);
        }
        ran += 1;
    }
    assert!(ran >= 8, "only {ran} sampler.conf files found");
}
