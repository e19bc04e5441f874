//! Several scans and one file: one after another (entries appended, `N.k` names), a
//! repeated scan number, and two scans at once (the second to a sibling file).

mod nexus_support;

use nexus_support::*;
use pvloom_nexus::model::ScanEvent;
use serde_json::json;

fn run_scan(dir: &std::path::Path, file: &std::path::Path, number: u64, n: usize) -> String {
    let mut w = writer(dir);
    w.handle(ScanEvent::Begin(Box::new(ascan_meta(file, number, n, vec![])))).unwrap();
    for e in ascan_points(0, n, n) {
        w.handle(e).unwrap();
    }
    w.handle(closed()).unwrap();
    w.entry_name().unwrap().to_owned()
}

#[test]
fn scans_one_after_another_append_entries() {
    let dir = TempDir::new("append");
    let file = dir.path().join("session.h5");
    assert_eq!(run_scan(dir.path(), &file, 1, 5), "1.1");
    assert_eq!(run_scan(dir.path(), &file, 2, 8), "2.1");
    // The same scan number again (a restarted session): the next free N.k.
    assert_eq!(run_scan(dir.path(), &file, 2, 3), "2.2");
    let expect = merge(
        merge(ascan_expect("1.1", 5), ascan_expect("2.1", 8)),
        merge(
            ascan_expect("2.2", 3),
            json!({
                "attrs": {"/": {"default": "2.2"}},
                "datasets": {"/1.1/end_reason": {"strings": "SUCCESS"}, "/2.1/end_reason": {"strings": "SUCCESS"}},
            }),
        ),
    );
    check_file(dir.path(), &file, &expect);
    validate(&file, &["1.1", "2.1", "2.2"]);
}

#[test]
fn concurrent_scans_on_one_file_do_not_collide() {
    let dir = TempDir::new("concurrent");
    let file = dir.path().join("busy.h5");
    let n = 4;
    let mut a = writer(dir.path());
    let mut b = writer(dir.path());
    a.handle(ScanEvent::Begin(Box::new(ascan_meta(&file, 5, n, vec![])))).unwrap();
    b.handle(ScanEvent::Begin(Box::new(ascan_meta(&file, 6, n, vec![])))).unwrap();
    assert_eq!(a.file_path(), Some(file.as_path()));
    let sibling = dir.path().join("busy_6.h5");
    assert_eq!(b.file_path(), Some(sibling.as_path()));
    // Interleaved points, closed in the other order.
    for (ea, eb) in ascan_points(0, n, n).into_iter().zip(ascan_points(0, n, n)) {
        a.handle(ea).unwrap();
        b.handle(eb).unwrap();
    }
    b.handle(closed()).unwrap();
    a.handle(closed()).unwrap();
    check_file(dir.path(), &file, &merge(ascan_expect("5.1", n), json!({"absent": ["/6.1"]})));
    check_file(dir.path(), &sibling, &ascan_expect("6.1", n));
    // Once the first is closed, the file is free again: a third scan appends to it.
    assert_eq!(run_scan(dir.path(), &file, 7, n), "7.1");
    check_file(dir.path(), &file, &merge(ascan_expect("5.1", n), ascan_expect("7.1", n)));
}

#[test]
fn writers_on_threads_write_their_own_files() {
    let dir = TempDir::new("threads");
    let n = 200;
    let handles: Vec<_> = (0..3u64)
        .map(|k| {
            let d = dir.path().to_owned();
            std::thread::spawn(move || {
                let file = d.join(format!("t{k}.h5"));
                let mut w = writer(&d);
                w.handle(ScanEvent::Begin(Box::new(ascan_meta(&file, 10 + k, n, vec![])))).unwrap();
                for from in (0..n).step_by(10) {
                    for e in ascan_points(from, from + 10, n) {
                        w.handle(e).unwrap();
                    }
                }
                w.handle(closed()).unwrap();
                (file, w.entry_name().unwrap().to_owned())
            })
        })
        .collect();
    for h in handles {
        let (file, entry) = h.join().unwrap();
        check_file(dir.path(), &file, &ascan_expect(&entry, n));
    }
}
