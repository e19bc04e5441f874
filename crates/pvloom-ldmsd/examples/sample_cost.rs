//! Wall time per sample (`Instant` over many samples, one thread) of every sampler: the
//! `/proc` samplers on this machine's `/proc` and on the test fixtures, the example samplers,
//! and test_sampler updating one 64-metric U64 set. For each `/proc` file, also the time of
//! reading it alone: the kernel's part of a sample, which no sampler (ldmsd's included)
//! can save, and what is left to the sampler's own code.
//!
//! `cargo run --release -p pvloom-ldmsd --example sample_cost [samples]`

use std::path::{Path, PathBuf};
use std::time::Instant;

use pvloom_ldmsd::config::{Cmd, Parser};
use pvloom_ldmsd::sampler::procfile::ProcFile;
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

/// Microseconds per sample of `plugin` (`None` if it could not be configured).
fn measure(label: &str, plugin: &str, root: &Path, lines: &[String], n: u32) -> Option<f64> {
    let (mut s, mut sets) = match configured(plugin, root, lines) {
        Ok(v) => v,
        Err(e) => {
            println!("{label:28} {e}");
            return None;
        }
    };
    let set = sets.first_mut()?;
    let t0 = Instant::now();
    for _ in 0..n {
        s.sample(set, now()).expect("sample");
    }
    let per = t0.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("{label:28} {:4} metrics  {per:>8.2} us/sample", set.meta().card());
    Some(per)
}

/// Microseconds per read of `/rel` alone, as the samplers read it (one open file, read
/// again from offset 0).
fn read_alone(rel: &str, n: u32) -> Option<f64> {
    let mut file = ProcFile::new(Path::new("/"), rel);
    file.read().ok()?;
    let t0 = Instant::now();
    for _ in 0..n {
        file.read().ok()?;
    }
    Some(t0.elapsed().as_secs_f64() * 1e6 / f64::from(n))
}

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let base = |p: &str| format!("config name={p} producer=p instance=p/{p} component_id=1");
    let real = PathBuf::from("/");
    for (plugin, fixture, rel) in [
        ("meminfo", "ls-l-meminfo", "proc/meminfo"),
        ("vmstat", "ls-l-two-samplers", "proc/vmstat"),
        ("loadavg", "loadavg", "proc/loadavg"),
        ("procnetdev2", "ls-l-records", "proc/net/dev"),
        ("procstat", "procstat", "proc/stat"),
    ] {
        let whole = measure(&format!("{plugin} (/proc)"), plugin, &real, &[base(plugin)], n);
        measure(&format!("{plugin} (fixture)"), plugin, &Path::new(FIXTURES).join(fixture), &[base(plugin)], n);
        if let (Some(whole), Some(read)) = (whole, read_alone(rel, n)) {
            let own = (whole - read).max(0.0);
            println!("{:28}   /{rel} read alone {read:>8.2} us; the sampler's own {own:.2} us", "");
        }
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
