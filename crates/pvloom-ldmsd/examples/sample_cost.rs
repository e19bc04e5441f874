//! CPU time per sample of the meminfo, vmstat and procnetdev2 samplers on this machine's
//! `/proc` (or on the root given as the first argument).
//!
//! `cargo run -p pvloom-ldmsd --example sample_cost [root] [samples]`

use std::path::PathBuf;
use std::time::Instant;

use pvloom_ldmsd::config::{Cmd, Parser};
use pvloom_ldmsd::sampler::{now, sampler_with_root};

fn main() {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(args.next().unwrap_or_else(|| "/".into()));
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    for plugin in ["meminfo", "vmstat", "loadavg", "procnetdev2"] {
        let line = format!("config name={plugin} producer=p instance=p/{plugin} component_id=1");
        let Ok(Some(Cmd::Config(cfg))) = Parser::new().parse_line(&line) else { unreachable!() };
        let mut s = sampler_with_root(plugin, &root).expect("known plugin");
        let mut set = match s.configure(&cfg) {
            Ok(mut v) => v.remove(0),
            Err(e) => {
                println!("{plugin}: {e}");
                continue;
            }
        };
        let t0 = Instant::now();
        for _ in 0..n {
            s.sample(&mut set, now()).expect("sample");
        }
        let per = t0.elapsed() / n;
        println!("{plugin:12} {:4} metrics  {:>8.2} us/sample", set.meta().card(), per.as_secs_f64() * 1e6);
    }
}
