//! A port scan's worth of connect/close against the set server, alone in its test binary:
//! it reads the process's RSS, which tests running beside it in one process would move.

mod server_util;

use std::net::TcpStream;
use std::time::Instant;

use pvloom_ldms::server::ServerConfig;
use server_util::*;

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    s.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4
}

#[test]
fn ten_thousand_connect_close_cycles_leave_nothing() {
    let (_rt, reg, srv) = server(ServerConfig::default());
    reg.publish(small_set("host/s", 0, 0, 0o440)).unwrap();
    let addr = srv.local_addr();
    let cycle = |n: usize| {
        for _ in 0..n {
            drop(TcpStream::connect(addr).unwrap());
        }
    };
    // Rounds of 2 500 (10 000 in all) after a warm-up: memory may settle at first
    // (allocator arenas, the runtime's tables) but must not grow with the cycles.
    cycle(1000);
    wait_for("warm-up drained", || srv.connections() == 0);
    let mut rss = vec![rss_kib()];
    let t = Instant::now();
    for _ in 0..4 {
        cycle(2500);
        wait_for("all closed", || srv.connections() == 0);
        rss.push(rss_kib());
    }
    eprintln!("10000 connect/close cycles in {:?}; RSS after each 2500 (KiB): {rss:?}", t.elapsed());
    let growth = rss[4].saturating_sub(rss[2]);
    // Slack for allocator arenas, which settle in steps.
    assert!(growth < 6 * 1024, "RSS still growing over the last 5000 cycles: {rss:?}");
    assert_eq!(reg.registrations(), 0);
}
