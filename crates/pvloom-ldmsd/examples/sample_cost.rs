//! Wall time per sample (`Instant` over many samples, one thread) of every sampler: the
//! `/proc` samplers on this machine's `/proc` and on the test fixtures, the example samplers,
//! and test_sampler updating one 64-metric U64 set.
//!
//! `cargo run --release -p pvloom-ldmsd --example sample_cost [samples]`

use std::path::{Path, PathBuf};
use std::time::Instant;

use pvloom_ldmsd::config::{Cmd, Parser};
use pvloom_ldmsd::sampler::{Sampler, now, sampler_with_root};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Configure `plugin` under `root` with `lines` (one `config` each); the sampler and its sets.
fn configured(
    plugin: &str,
    root: &Path,
    lines: &[String],
) -> Result<(Box<dyn Sampler>, Vec<pvloom_ldms::set::LocalSet>), String> {
    let mut s = sampler_with_root(plugin, root).ok_or("unknown plugin")?;
    let mut sets = Vec::new();
    for line in lines {
        let Ok(Some(Cmd::Config(cfg))) = Parser::new().parse_line(line) else { return Err(format!("bad line {line}")) };
        sets.extend(s.configure(&cfg).map_err(|e| e.to_string())?);
    }
    Ok((s, sets))
}

fn measure(label: &str, plugin: &str, root: &Path, lines: &[String], n: u32) {
    let (mut s, mut sets) = match configured(plugin, root, lines) {
        Ok(v) => v,
        Err(e) => {
            println!("{label:28} {e}");
            return;
        }
    };
    let Some(set) = sets.first_mut() else { return };
    let t0 = Instant::now();
    for _ in 0..n {
        s.sample(set, now()).expect("sample");
    }
    let per = t0.elapsed() / n;
    println!("{label:28} {:4} metrics  {:>8.2} us/sample", set.meta().card(), per.as_secs_f64() * 1e6);
}

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let base = |p: &str| format!("config name={p} producer=p instance=p/{p} component_id=1");
    let real = PathBuf::from("/");
    for (plugin, fixture) in [
        ("meminfo", "ls-l-meminfo"),
        ("vmstat", "ls-l-two-samplers"),
        ("loadavg", "loadavg"),
        ("procnetdev2", "ls-l-records"),
        ("procstat", "procstat"),
    ] {
        measure(&format!("{plugin} (/proc)"), plugin, &real, &[base(plugin)], n);
        measure(&format!("{plugin} (fixture)"), plugin, &Path::new(FIXTURES).join(fixture), &[base(plugin)], n);
    }
    for plugin in ["array_example", "list_sampler"] {
        measure(plugin, plugin, &real, &[base(plugin)], n);
    }
    measure("record_sampler", "record_sampler", &real, &[format!("{} with_name=1", base("record_sampler"))], n);
    let metrics: Vec<String> = (0..64).map(|i| format!("m{i}:d:u64:{i}")).collect();
    let ts = [
        format!("config name=test_sampler action=add_schema schema=s64 metrics={}", metrics.join(",")),
        "config name=test_sampler action=add_set schema=s64 instance=p/s64 producer=p component_id=1".to_string(),
    ];
    measure("test_sampler (64 u64)", "test_sampler", &real, &ts, n);
    let tl = [
        "config name=test_sampler action=add_lists schema=tl value_types=u64,record,char_array,d64 max_len=4 min_len=0"
            .to_string(),
        "config name=test_sampler action=add_set schema=tl instance=p/tl producer=p component_id=1".to_string(),
    ];
    measure("test_sampler (add_lists)", "test_sampler", &real, &tl, n);
}
