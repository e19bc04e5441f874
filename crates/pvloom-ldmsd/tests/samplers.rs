//! Samplers on fixture `/proc` files built from the recorded values: their sets have the
//! real ldmsd's schema (descriptors, sizes, digest, header fields), checked against the set
//! images decoded from the captures, and after a sample they hold the file's values.

use std::path::{Path, PathBuf};

use pvloom_ldms::set::{LocalSet, MetricValue, SetData, SetMeta, Timestamp, ValueType, decode_image};
use pvloom_ldmsd::config::{Cmd, Parser};
use pvloom_ldmsd::sampler::{Sampler, sampler_with_root};

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ldms-captures");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The payload of every READ_RESP in a server-to-client stream, in stream order.
fn read_resp_images(scenario: &str, stream: &str) -> Vec<Vec<u8>> {
    let s = std::fs::read(PathBuf::from(CAPTURES).join(scenario).join(stream)).expect("capture stream");
    let be32 = |o: usize| u32::from_be_bytes(s[o..o + 4].try_into().unwrap()) as usize;
    let mut out = Vec::new();
    let mut o = 0;
    while o + 20 <= s.len() {
        let (ty, len) = (u16::from_be_bytes([s[o], s[o + 1]]), be32(o + 4));
        if ty == 5 {
            out.push(s[o + 36..o + 36 + be32(o + 32)].to_vec());
        }
        o += len;
    }
    out
}

/// The set images of every READ_RESP in a server-to-client stream that carries a whole set
/// (meta + data), by instance name; the last read of each set wins.
fn captured_sets(scenario: &str, stream: &str) -> Vec<(SetMeta, SetData)> {
    let mut out: Vec<(SetMeta, SetData)> = Vec::new();
    for img in read_resp_images(scenario, stream) {
        if let Ok((m, Some(d))) = decode_image(&img) {
            out.retain(|(x, _)| x.instance_name != m.instance_name);
            out.push((m, d));
        }
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
    for (a, b) in ours.metrics.iter().zip(real.metrics.iter()) {
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

/// A `/proc/net/dev` with these interfaces, each counter `base + its column`.
fn net_dev(ifaces: &[(&str, u64)]) -> String {
    let mut text = String::from(
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
    );
    for (name, base) in ifaces {
        let cols: Vec<String> = (0..16).map(|c| (base + c).to_string()).collect();
        text += &format!("{name:>6}: {}\n", cols.join(" "));
    }
    text
}

/// The (name, counters) of every record in procnetdev2's list, and each one's heap offset.
fn netdev_records(d: &SetData) -> Vec<(String, Vec<u64>, u32)> {
    let Some(MetricValue::List(l)) = &d.values[4] else { panic!("no list: {:?}", d.values[4]) };
    l.iter()
        .map(|e| {
            let MetricValue::RecordInst(r) = &e.value else { panic!("{:?}", e.value) };
            let MetricValue::CharArray(n) = &r.members[0] else { panic!() };
            let counters =
                r.members[1..].iter().map(|m| if let MetricValue::U64(v) = m { *v } else { panic!() }).collect();
            (String::from_utf8_lossy(n).trim_end_matches('\0').to_string(), counters, e.heap_off)
        })
        .collect()
}

#[test]
fn procnetdev2_follows_counters_in_place_and_interfaces_by_a_new_list() {
    let root = std::env::temp_dir().join(format!("pvloom-netdev-{}", std::process::id()));
    std::fs::create_dir_all(root.join("proc/net")).unwrap();
    let write = |ifaces: &[(&str, u64)]| std::fs::write(root.join("proc/net/dev"), net_dev(ifaces)).unwrap();
    write(&[("lo", 100), ("eth0", 200)]);
    let Some(Cmd::Config(cfg)) = Parser::new().parse_line("config name=procnetdev2 producer=p instance=p/n").unwrap()
    else {
        panic!()
    };
    let mut s = sampler_with_root("procnetdev2", &root).unwrap();
    let mut set = s.configure(&cfg).unwrap().remove(0);
    let counters = |base: u64| (base..base + 16).collect::<Vec<u64>>();

    let first = netdev_records(&sample(s.as_mut(), &mut set));
    assert_eq!(
        first.iter().map(|r| (r.0.as_str(), r.1.clone())).collect::<Vec<_>>(),
        [("lo", counters(100)), ("eth0", counters(200))]
    );

    // The same interfaces, new counters: the same records, rewritten where they are.
    write(&[("lo", 1_000), ("eth0", 2_000)]);
    let heap_gn = set.data().unwrap().heap.gn;
    let second = netdev_records(&sample(s.as_mut(), &mut set));
    assert_eq!(
        second.iter().map(|r| (r.0.as_str(), r.1.clone())).collect::<Vec<_>>(),
        [("lo", counters(1_000)), ("eth0", counters(2_000))]
    );
    assert_eq!(second.iter().map(|r| r.2).collect::<Vec<_>>(), first.iter().map(|r| r.2).collect::<Vec<_>>());
    assert_eq!(set.data().unwrap().heap.gn, heap_gn, "no heap change for new counters");

    // An interface comes, another goes: a new list, as a fresh sampler would build it.
    for ifaces in [&[("lo", 5), ("eth0", 6), ("ib0", 7)][..], &[("ib0", 8)], &[]] {
        write(ifaces);
        let got = netdev_records(&sample(s.as_mut(), &mut set));
        let mut fresh = sampler_with_root("procnetdev2", &root).unwrap();
        let mut fresh_set = fresh.configure(&cfg).unwrap().remove(0);
        let want = netdev_records(&sample(fresh.as_mut(), &mut fresh_set));
        assert_eq!(
            got.iter().map(|r| (&r.0, &r.1)).collect::<Vec<_>>(),
            want.iter().map(|r| (&r.0, &r.1)).collect::<Vec<_>>()
        );
        assert_eq!(
            got.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            ifaces.iter().map(|i| i.0).collect::<Vec<_>>()
        );
    }
    let _ = std::fs::remove_dir_all(&root);
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

/// Every set image a stream carries (meta-only reads included), by instance; last one wins.
fn captured_metas(scenario: &str, stream: &str) -> Vec<SetMeta> {
    let mut out: Vec<SetMeta> = Vec::new();
    for img in read_resp_images(scenario, stream) {
        if let Ok(m) = SetMeta::decode(&img) {
            out.retain(|x| x.instance_name != m.instance_name);
            out.push(m);
        }
    }
    out
}

/// The fixture root each /proc sampler reads in the all-configs test.
fn fixture_for(plugin: &str) -> PathBuf {
    let dir = match plugin {
        "meminfo" => "ls-l-meminfo",
        "vmstat" => "ls-l-two-samplers",
        "procnetdev2" => "ls-l-records",
        "loadavg" => "loadavg",
        "procstat" => "procstat",
        _ => "none",
    };
    Path::new(FIXTURES).join(dir)
}

/// Run a parsed config: load and configure every plugin (fixture roots, uid/gid 0 as in the
/// recordings); the sets created, by instance, with their samplers' names.
/// Samplers, and the sets with the index of the sampler that made each.
type Configured = (Vec<Box<dyn Sampler>>, Vec<(usize, LocalSet)>);

fn run_config(cmds: Vec<pvloom_ldmsd::config::Command>) -> Configured {
    let mut samplers: Vec<(String, Box<dyn Sampler>)> = Vec::new();
    let mut sets = Vec::new();
    for c in cmds {
        match c.cmd {
            Cmd::Load { name, plugin } => {
                let s = sampler_with_root(&plugin, &fixture_for(&plugin)).unwrap_or_else(|| panic!("plugin {plugin}"));
                samplers.push((name, s));
            }
            Cmd::Config(mut cfg) => {
                cfg.uid = Some(pvloom_ldmsd::config::Owner::Id(0));
                cfg.gid = Some(pvloom_ldmsd::config::Owner::Id(0));
                let k = samplers.iter().position(|(n, _)| *n == cfg.name).expect("loaded");
                for set in samplers[k].1.configure(&cfg).unwrap_or_else(|e| panic!("{}:{}: {e}", c.file, c.line)) {
                    sets.push((k, set));
                }
            }
            _ => {}
        }
    }
    (samplers.into_iter().map(|(_, s)| s).collect(), sets)
}

fn streams(scenario: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(PathBuf::from(CAPTURES).join(scenario))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with("s2c.bin"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_capture_config_lays_out_the_captured_sets() {
    let mut confs = Vec::new();
    for e in std::fs::read_dir(CAPTURES).unwrap() {
        let dir = e.unwrap().path();
        for f in std::fs::read_dir(&dir).into_iter().flatten() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|x| x == "conf") && !p.to_string_lossy().contains("ctl-del") {
                confs.push(p);
            }
        }
    }
    assert!(confs.len() >= 9, "{confs:?}");
    let mut checked = 0;
    for conf in confs {
        let scenario = conf.parent().unwrap().file_name().unwrap().to_str().unwrap().to_string();
        let cmds = Parser::new().parse_file(&conf).unwrap();
        if !cmds.iter().any(|c| matches!(c.cmd, Cmd::Load { .. })) {
            continue;
        }
        let (mut samplers, mut sets) = run_config(cmds);
        let real: Vec<SetMeta> = streams(&scenario).iter().flat_map(|s| captured_metas(&scenario, s)).collect();
        for (k, set) in &mut sets {
            // A sample must work on every set, too.
            samplers[*k].sample(set, Timestamp { sec: 1, usec: 0 }).unwrap();
            if let Some(m) = real.iter().find(|m| m.instance_name == set.meta().instance_name) {
                let fresh = {
                    let (_, mut again) = run_config(Parser::new().parse_file(&conf).unwrap());
                    let i = again.iter().position(|(_, s)| s.name() == set.name()).unwrap();
                    again.remove(i).1
                };
                assert_same_meta(&fresh, m);
                checked += 1;
            }
        }
    }
    // all-types 2, list-record 3, ls-l-* 4, python-api 2, msg-bus/aggregator meminfo.
    assert!(checked >= 11, "only {checked} captured sets compared");
}

/// Configure the scenario's sampler.conf and sample every set `n` times; the sets by name.
fn sampled_scenario(scenario: &str, n: usize) -> Vec<LocalSet> {
    let conf = PathBuf::from(CAPTURES).join(scenario).join("sampler.conf");
    let (mut samplers, mut sets) = run_config(Parser::new().parse_file(&conf).unwrap());
    for _ in 0..n {
        for (k, set) in &mut sets {
            samplers[*k].sample(set, Timestamp { sec: 1_796_152_084, usec: 1_000 }).unwrap();
        }
    }
    sets.into_iter().map(|(_, s)| s).collect()
}

fn by_name<'a>(sets: &'a [LocalSet], name: &str) -> &'a LocalSet {
    sets.iter().find(|s| s.name() == name).unwrap_or_else(|| panic!("no set {name}"))
}

#[test]
fn test_sampler_all_types_matches_the_capture() {
    let real = captured_sets("all-types", "conn1.s2c.bin");
    let (meta, data) = real.iter().find(|(m, _)| m.instance_name == "localhost1/all_types").unwrap();
    // update #1 shows d_u8 = 254: four samples after 250.
    let sets = sampled_scenario("all-types", 4);
    let set = by_name(&sets, "localhost1/all_types");
    assert_same_meta(set, meta);
    assert_eq!((set.meta().card(), set.meta().meta_sz, set.meta().data_sz), (45, 2584, 360));
    assert_eq!(set.meta_gn(), 44);
    assert_eq!(data_values(&set.data().unwrap()), data_values(data));
    assert!(set.is_consistent());
}

#[test]
fn array_example_matches_the_capture() {
    let real = captured_sets("all-types", "conn1.s2c.bin");
    let (meta, data) = real.iter().find(|(m, _)| m.instance_name == "localhost1/array_example").unwrap();
    let Some(MetricValue::U8Array(a)) = &data.values[3] else { panic!() };
    // Sample k (from 0) writes u8_array[0] = k.
    let sets = sampled_scenario("all-types", a[0] as usize + 1);
    let set = by_name(&sets, "localhost1/array_example");
    assert_same_meta(set, meta);
    assert_eq!(data_values(&set.data().unwrap()), data_values(data));
}

#[test]
fn list_and_record_samplers_match_the_capture() {
    let real = captured_sets("list-record", "conn1.s2c.bin");
    let find = |n: &str| real.iter().find(|(m, _)| m.instance_name == n).unwrap().clone();
    let (rmeta, rdata) = find("localhost1/record_sampler");
    let Some(MetricValue::U32(round)) = rdata.values[3] else { panic!() };
    let sets = sampled_scenario("list-record", round as usize);
    let (lmeta, ldata) = find("localhost1/list_sampler");
    let ls = by_name(&sets, "localhost1/list_sampler");
    assert_same_meta(ls, &lmeta);
    assert_eq!(data_values(&ls.data().unwrap()), data_values(&ldata));
    let rs = by_name(&sets, "localhost1/record_sampler");
    assert_same_meta(rs, &rmeta);
    assert_eq!(data_values(&rs.data().unwrap()), data_values(&rdata));

    // test_lists: the layout is the capture's; the lengths are random, the contents follow.
    let (tmeta, tdata) = find("localhost1/test_lists");
    let tl = by_name(&sets, "localhost1/test_lists");
    assert_same_meta(tl, &tmeta);
    let d = tl.data().unwrap();
    let Some(MetricValue::U64(r)) = d.values[4] else { panic!() };
    assert_eq!(r, round as u64);
    assert_eq!(tdata.values[4], Some(MetricValue::U64(r)));
    for list in [6, 8, 10, 12] {
        let (Some(MetricValue::U64(n)), Some(MetricValue::List(l))) = (&d.values[list - 1], &d.values[list]) else {
            panic!()
        };
        assert!(*n <= 4 && l.len() == *n as usize);
        for (j, e) in l.iter().enumerate() {
            let v = r + j as u64;
            let want = match list {
                6 => MetricValue::U64(v),
                10 => {
                    MetricValue::CharArray(vec![b'a' + (v % 26) as u8, b'a' + (v % 26) as u8, b'a' + (v % 26) as u8, 0])
                }
                12 => MetricValue::D64(v as f64),
                _ => match &e.value {
                    MetricValue::RecordInst(ri) => {
                        assert_eq!((ri.rec_type, ri.members.len()), (3, 22));
                        assert_eq!(ri.members[7], MetricValue::U64(v));
                        continue;
                    }
                    x => panic!("{x:?}"),
                },
            };
            assert_eq!(e.value, want, "list {list} entry {j}");
        }
        // The captured lists hold the same kinds of entries.
        let Some(MetricValue::List(cl)) = &tdata.values[list] else { panic!() };
        if let (Some(a), Some(b)) = (cl.first(), l.first()) {
            assert_eq!(a.value.ty(), b.value.ty());
        }
    }
}

#[test]
fn test_sampler_dir_many_sets() {
    let script = PathBuf::from(CAPTURES).join("dir-many/make-conf.sh");
    let out = std::process::Command::new("bash").arg(&script).output().expect("bash");
    let text = String::from_utf8(out.stdout).unwrap();
    let cmds = Parser::new().parse_str(&text, "dir-many.conf").unwrap();
    let t0 = std::time::Instant::now();
    let (mut samplers, mut sets) = run_config(cmds);
    assert_eq!(sets.len(), 2640);
    for (k, set) in &mut sets {
        samplers[*k].sample(set, Timestamp { sec: 1, usec: 0 }).unwrap();
    }
    eprintln!("dir-many: 2640 sets configured and sampled once in {:?}", t0.elapsed());
    let real = captured_metas("dir-many", "conn1.s2c.bin");
    assert_eq!(real.len(), 89);
    for m in &real {
        let (_, set) = sets.iter().find(|(_, s)| s.name() == m.instance_name).unwrap();
        // meta_gn: the capture's, since the values written at creation are the same.
        assert_same_meta(set, m);
        assert_eq!(set.get(1).unwrap(), MetricValue::U64(1));
    }
}

#[test]
fn procstat_from_the_fixture() {
    let line = "config name=procstat producer=p instance=p/procstat component_id=2 sc_clk_tck=1";
    let Some(Cmd::Config(cfg)) = Parser::new().parse_line(line).unwrap() else { panic!() };
    let mut s = sampler_with_root("procstat", &Path::new(FIXTURES).join("procstat")).unwrap();
    let mut set = s.configure(&cfg).unwrap().remove(0);
    let m = set.meta().clone();
    let names: Vec<&str> = m.metrics.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names[3..21],
        [
            "cores_up",
            "cpu_enabled",
            "user",
            "nice",
            "sys",
            "idle",
            "iowait",
            "irq",
            "softirq",
            "steal",
            "guest",
            "guest_nice",
            "hwintr_count",
            "context_switches",
            "processes",
            "procs_running",
            "procs_blocked",
            "softirq_count"
        ]
    );
    assert_eq!(names[21], "per_core_cpu_enabled");
    assert!(m.metrics[21..32].iter().all(|d| d.ty == ValueType::U64Array && d.count == 4));
    assert_eq!((names[32], m.metrics[32].is_meta()), ("sc_clk_tck", true));
    let d = sample(s.as_mut(), &mut set);
    use MetricValue::{U64, U64Array};
    assert_eq!(d.values[3], Some(U64(3)));
    assert_eq!(
        d.values[4..9].to_vec(),
        [Some(U64(1)), Some(U64(1000)), Some(U64(20)), Some(U64(300)), Some(U64(40000))]
    );
    assert_eq!(
        d.values[15..21].to_vec(),
        [Some(U64(123456)), Some(U64(987654)), Some(U64(4321)), Some(U64(2)), Some(U64(0)), Some(U64(55555))]
    );
    assert_eq!(d.values[21], Some(U64Array(vec![1, 1, 0, 1])));
    assert_eq!(d.values[22], Some(U64Array(vec![250, 250, 0, 500])));
    assert_eq!(set.get(32).unwrap(), U64(100));

    // maxcpu=2: the arrays hold two cores, the rest are ignored.
    let Some(Cmd::Config(cfg)) =
        Parser::new().parse_line("config name=procstat producer=p instance=p/ps maxcpu=2").unwrap()
    else {
        panic!()
    };
    let mut s = sampler_with_root("procstat", &Path::new(FIXTURES).join("procstat")).unwrap();
    let mut set = s.configure(&cfg).unwrap().remove(0);
    let d = sample(s.as_mut(), &mut set);
    assert_eq!(d.values[3], Some(U64(2)));
    assert_eq!(d.values[21], Some(U64Array(vec![1, 1])));
    // maxcpu=6: two more zero rows.
    let Some(Cmd::Config(cfg)) =
        Parser::new().parse_line("config name=procstat producer=p instance=p/ps maxcpu=6").unwrap()
    else {
        panic!()
    };
    let mut s = sampler_with_root("procstat", &Path::new(FIXTURES).join("procstat")).unwrap();
    let mut set = s.configure(&cfg).unwrap().remove(0);
    let d = sample(s.as_mut(), &mut set);
    assert_eq!(d.values[22], Some(U64Array(vec![250, 250, 0, 500, 0, 0])));
}
