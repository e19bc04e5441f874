//! Against a running ldmsd: `ldms_client_bench HOST:PORT SET [UPDATES]`. Looks the set
//! up, times blocking updates, then registers for pushes for three seconds and cancels.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pvloom_ldms::client::{Xprt, XprtConfig};
use pvloom_ldms::request::{UPD_F_PUSH_LAST, XPRT_PUSH_F_CHANGE};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).ok_or("usage: HOST:PORT SET [UPDATES]")?.parse()?;
    let name = args.get(2).ok_or("usage: HOST:PORT SET [UPDATES]")?;
    let n: u32 = args.get(3).map_or(Ok(10_000), |s| s.parse())?;
    let rt = pvloom_core::Runtime::new()?;
    let x = Xprt::connect(&rt.handle(), addr, XprtConfig::default())?;
    let set = x.lookup(name, 0)?.pop().ok_or("no set")?;
    let t = Instant::now();
    for _ in 0..n {
        set.update()?;
    }
    let dt = t.elapsed();
    println!(
        "{n} updates of {name} ({} bytes of data): {:.0} updates/s, {:.1} us each; last data_gn {} consistent {}",
        set.meta().data_sz,
        f64::from(n) / dt.as_secs_f64(),
        dt.as_secs_f64() * 1e6 / f64::from(n),
        set.data_gn(),
        set.is_consistent()
    );
    let pushes = Arc::new(AtomicU32::new(0));
    let last = Arc::new(AtomicU32::new(0));
    let (p, l) = (pushes.clone(), last.clone());
    set.register_push(XPRT_PUSH_F_CHANGE, move |s, r, flags| {
        p.fetch_add(1, Ordering::Relaxed);
        if flags & UPD_F_PUSH_LAST != 0 {
            l.store(1, Ordering::Relaxed);
        }
        if let Ok(snap) = r {
            println!("push flags={flags:#x} data_gn={} ({})", snap.data_gn(), s.name());
        }
    });
    std::thread::sleep(Duration::from_millis(3100));
    set.cancel_push();
    std::thread::sleep(Duration::from_millis(500));
    println!("pushes: {}, final PUSH_LAST seen: {}", pushes.load(Ordering::Relaxed), last.load(Ordering::Relaxed) == 1);
    x.close();
    Ok(())
}
