//! ScanWatcher sees the scans created after it, of its session only.

mod support;

use std::time::Duration;

use pvloom_nexus::blissdata::ScanWatcher;
use support::Redis;

#[test]
fn the_watcher_sees_new_scans_of_its_session_only() {
    let redis = Redis::start();
    // A scan before the watchers: neither sees it.
    let old = redis.py("write_scan.py", &["full", "alpha"]);
    let old_key = old.lines().next().unwrap().strip_prefix("KEY ").unwrap().to_owned();
    let mut alpha = ScanWatcher::connect(&redis.url(), Some("alpha")).unwrap();
    let mut any = ScanWatcher::connect(&redis.url(), None).unwrap();
    assert_eq!(alpha.next_scan(Duration::from_millis(100)).unwrap(), None);

    let b = redis.py("write_scan.py", &["full", "beta"]);
    let b_key = b.lines().next().unwrap().strip_prefix("KEY ").unwrap().to_owned();
    let a = redis.py("write_scan.py", &["full", "alpha"]);
    let a_key = a.lines().next().unwrap().strip_prefix("KEY ").unwrap().to_owned();
    assert_ne!(a_key, old_key);

    assert_eq!(alpha.next_scan(Duration::from_secs(5)).unwrap(), Some(a_key.clone()));
    assert_eq!(alpha.next_scan(Duration::from_millis(100)).unwrap(), None);
    assert_eq!(any.next_scan(Duration::from_secs(5)).unwrap(), Some(b_key.clone()));
    assert_eq!(any.next_scan(Duration::from_secs(5)).unwrap(), Some(a_key.clone()));
    assert_eq!(any.next_scan(Duration::from_millis(100)).unwrap(), None);

    // From the start of the history, every scan kept.
    let mut all = ScanWatcher::connect_since(&redis.url(), None, "0-0").unwrap();
    let mut seen = Vec::new();
    while let Some(key) = all.next_scan(Duration::from_millis(200)).unwrap() {
        seen.push(key);
    }
    assert_eq!(seen, [old_key, b_key, a_key]);
}
