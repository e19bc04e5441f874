//! Samplers on fixture `/proc` files built from the recorded values: their sets have the
//! real ldmsd's schema (descriptors, sizes, digest, header fields), checked against the set
//! images decoded from the captures, and after a sample they hold the file's values.

use std::path::{Path, PathBuf};

use pvloom_ldms::set::{LocalSet, MetricValue, SetData, SetMeta, Timestamp, ValueType, decode_image};
use pvloom_ldmsd::config::{Cmd, Parser};
use pvloom_ldmsd::sampler::{Sampler, sampler_with_root};

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ldms-captures");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The set images of every READ_RESP in a server-to-client stream that carries a whole set
/// (meta + data), by instance name; the last read of each set wins.
fn captured_sets(scenario: &str, stream: &str) -> Vec<(SetMeta, SetData)> {
    let s = std::fs::read(PathBuf::from(CAPTURES).join(scenario).join(stream)).expect("capture stream");
    let be32 = |o: usize| u32::from_be_bytes(s[o..o + 4].try_into().unwrap()) as usize;
    let mut out: Vec<(SetMeta, SetData)> = Vec::new();
    let mut o = 0;
    while o + 20 <= s.len() {
        let (ty, len) = (u16::from_be_bytes([s[o], s[o + 1]]), be32(o + 4));
        if ty == 5 {
            let img = &s[o + 36..o + 36 + be32(o + 32)];
            if let Ok((m, Some(d))) = decode_image(img) {
                out.retain(|(x, _)| x.instance_name != m.instance_name);
                out.push((m, d));
            }
        }
        o += len;
    }
    out
}

/// Configure `plugin` from the scenario's own sampler.conf, with the fixture root.
fn configured(plugin: &str, scenario: &str, fixture: &str) -> (Box<dyn Sampler>, LocalSet) {
    let conf = PathBuf::from(CAPTURES).join(scenario).join("sampler.conf");
    let cmds = Parser::new().parse_file(&conf).unwrap();
    let mut cfg = cmds
        .into_iter()
        .find_map(|c| match c.cmd {
            Cmd::Config(p) if p.name == plugin => Some(p),
            _ => None,
        })
        .expect("config line");
    // The recording ran as root; say so, whoever runs the tests.
    cfg.uid = Some(pvloom_ldmsd::config::Owner::Id(0));
    cfg.gid = Some(pvloom_ldmsd::config::Owner::Id(0));
    let mut s = sampler_with_root(plugin, &Path::new(FIXTURES).join(fixture)).unwrap();
    let mut sets = s.configure(&cfg).unwrap();
    assert_eq!(sets.len(), 1);
    (s, sets.remove(0))
}

/// The laid-out set's metadata equals the captured one: names, units, types, counts,
/// offsets, flags, sizes, digest, producer, instance, uid/gid/perm, meta_gn.
fn assert_same_meta(set: &LocalSet, real: &SetMeta) {
    let ours = &SetMeta::decode(set.meta_bytes()).unwrap();
    assert_eq!(ours.card(), real.card());
    for (a, b) in ours.metrics.iter().zip(&real.metrics) {
        assert_eq!(a, b, "descriptor of {}", b.name);
    }
    assert_eq!(
        (ours.meta_sz, ours.data_sz, ours.heap_sz, ours.uid, ours.gid, ours.perm, ours.meta_gn),
        (real.meta_sz, real.data_sz, real.heap_sz, real.uid, real.gid, real.perm, real.meta_gn)
    );
    assert_eq!(ours.schema_digest, real.schema_digest, "schema digest");
    assert_eq!(ours.values, real.values, "meta values");
    assert!(ours == real, "set headers differ");
}

fn sample(s: &mut dyn Sampler, set: &mut LocalSet) -> SetData {
    let gn = set.data_gn();
    s.sample(set, Timestamp { sec: 1_795_436_485, usec: 1_551 }).unwrap();
    assert!(set.is_consistent());
    assert!(set.data_gn() > gn);
    let t = set.transaction();
    assert!(t.ts.sec >= 1_795_436_485 && t.begin() == Timestamp { sec: 1_795_436_485, usec: 1_551 });
    set.data().unwrap()
}

fn data_values(d: &SetData) -> Vec<Option<MetricValue>> {
    d.values.iter().map(|v| v.as_ref().map(|v| v.without_locations())).collect()
}

#[test]
fn meminfo_matches_the_capture() {
    let (real_meta, real_data) = captured_sets("ls-l-meminfo", "s2c.bin").pop().unwrap();
    let (mut s, mut set) = configured("meminfo", "ls-l-meminfo", "ls-l-meminfo");
    assert_same_meta(&set, &real_meta);
    assert_eq!(set.meta().schema_name, "meminfo");
    let d = sample(s.as_mut(), &mut set);
    assert_eq!(data_values(&d), data_values(&real_data));
    assert_eq!(d.values[3], Some(MetricValue::U64(24_684_084)));
}

#[test]
fn vmstat_matches_the_two_sampler_capture() {
    let real = captured_sets("ls-l-two-samplers", "conn1.s2c.bin");
    let find = |n: &str| real.iter().find(|(m, _)| m.instance_name == n).unwrap().clone();
    let (vm_meta, vm_data) = find("localhost1/vmstat");
    let (mut s, mut set) = configured("vmstat", "ls-l-two-samplers", "ls-l-two-samplers");
    assert_same_meta(&set, &vm_meta);
    assert_eq!(set.meta().card(), 195);
    let d = sample(s.as_mut(), &mut set);
    assert_eq!(data_values(&d), data_values(&vm_data));
}

#[test]
fn procnetdev2_matches_the_capture() {
    let (real_meta, real_data) = captured_sets("ls-l-records", "s2c.bin").pop().unwrap();
    let (mut s, mut set) = configured("procnetdev2", "ls-l-records", "ls-l-records");
    assert_same_meta(&set, &real_meta);
    let d = sample(s.as_mut(), &mut set);
    assert_eq!(data_values(&d), data_values(&real_data));
    let Some(MetricValue::List(l)) = &d.values[4] else { panic!() };
    assert_eq!(l.len(), 4);
}

#[test]
fn procnetdev2_ifaces_and_exclude() {
    let root = Path::new(FIXTURES).join("ls-l-records");
    for (attr, want) in [("ifaces", vec!["eth0", "lo"]), ("exclude", vec!["ifb0", "ifb1"])] {
        let mut p = Parser::new();
        let Some(Cmd::Config(cfg)) =
            p.parse_line(&format!("config name=procnetdev2 producer=p instance=p/n {attr}=eth0,lo")).unwrap()
        else {
            panic!()
        };
        let mut s = sampler_with_root("procnetdev2", &root).unwrap();
        let mut set = s.configure(&cfg).unwrap().remove(0);
        let d = sample(s.as_mut(), &mut set);
        let Some(MetricValue::List(l)) = &d.values[4] else { panic!() };
        let names: Vec<String> = l
            .iter()
            .map(|e| match &e.value {
                MetricValue::RecordInst(r) => match &r.members[0] {
                    MetricValue::CharArray(b) => String::from_utf8_lossy(b).trim_end_matches('\0').to_string(),
                    v => panic!("{v:?}"),
                },
                v => panic!("{v:?}"),
            })
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, want, "{attr}");
    }
}

fn loadavg(line: &str) -> (Box<dyn Sampler>, LocalSet) {
    let Some(Cmd::Config(cfg)) = Parser::new().parse_line(line).unwrap() else { panic!() };
    let mut s = sampler_with_root("loadavg", &Path::new(FIXTURES).join("loadavg")).unwrap();
    let set = s.configure(&cfg).unwrap().remove(0);
    (s, set)
}

#[test]
fn loadavg_schema_and_values() {
    let (mut s, mut set) = loadavg("config name=loadavg producer=p instance=p/loadavg component_id=3");
    let m = set.meta().clone();
    assert_eq!(m.schema_name, "loadavg");
    let names: Vec<_> = m.metrics.iter().map(|d| (d.name.as_str(), d.ty, d.is_meta())).collect();
    assert_eq!(
        names,
        [
            ("component_id", ValueType::U64, true),
            ("job_id", ValueType::U64, false),
            ("app_id", ValueType::U64, false),
            ("load1min", ValueType::D64, false),
            ("load5min", ValueType::D64, false),
            ("load15min", ValueType::D64, false),
            ("runnable", ValueType::U64, false),
            ("scheduling_entities", ValueType::U64, false),
            ("newest_pid", ValueType::U64, false),
        ]
    );
    let d = sample(s.as_mut(), &mut set);
    use MetricValue::{D64, U64};
    assert_eq!(
        d.values[3..].to_vec(),
        [Some(D64(1.52)), Some(D64(0.25)), Some(D64(0.07)), Some(U64(3)), Some(U64(412)), Some(U64(98765))]
    );
    assert_eq!(set.get(0).unwrap(), U64(3));

    let (mut s, mut set) =
        loadavg("config name=loadavg producer=p instance=p/l metrics=load1min,newest_pid force_integer");
    assert_eq!(set.meta().schema_name, "loadavgi100001");
    let d = sample(s.as_mut(), &mut set);
    assert_eq!(d.values[3..].to_vec(), [Some(U64(152)), Some(U64(98765))]);
    let Some(Cmd::Config(cfg)) =
        Parser::new().parse_line("config name=loadavg producer=p instance=i metrics=bogus").unwrap()
    else {
        panic!()
    };
    assert!(sampler_with_root("loadavg", Path::new(FIXTURES)).unwrap().configure(&cfg).is_err());
}

#[test]
fn config_errors_and_state() {
    let mut s = sampler_with_root("meminfo", &Path::new(FIXTURES).join("ls-l-meminfo")).unwrap();
    let Some(Cmd::Config(cfg)) = Parser::new().parse_line("config name=meminfo producer=p").unwrap() else { panic!() };
    assert!(s.configure(&cfg).unwrap_err().to_string().contains("instance"));
    let Some(Cmd::Config(cfg)) =
        Parser::new().parse_line("config name=meminfo producer=p instance=p/m schema=mem2 perm=0600").unwrap()
    else {
        panic!()
    };
    let mut set = s.configure(&cfg).unwrap().remove(0);
    assert_eq!((set.meta().schema_name.as_str(), set.meta().perm), ("mem2", 0o600));
    assert!(s.configure(&cfg).is_err());
    s.sample(&mut set, Timestamp::default()).unwrap();
    let mut missing = sampler_with_root("meminfo", Path::new("/nonexistent")).unwrap();
    assert!(missing.configure(&cfg).is_err());
    assert!(sampler_with_root("nosuch", Path::new("/")).is_none());
}
