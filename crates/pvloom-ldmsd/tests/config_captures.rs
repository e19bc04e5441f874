//! Every `.conf` file recorded with the real ldmsd parses into the expected commands, and
//! errors carry `file:line`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pvloom_ldmsd::config::{Cmd, ConfigErrorKind, Owner, Parser, PrdcrType, Push};

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ldms-captures");

fn conf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("captures folder") {
        let p = e.unwrap().path();
        if p.is_dir() {
            conf_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "conf") {
            out.push(p);
        }
    }
}

fn parse(p: &Path) -> Vec<Cmd> {
    Parser::with_env(BTreeMap::new()).parse_file(p).unwrap().into_iter().map(|c| c.cmd).collect()
}

#[test]
fn every_capture_conf_parses() {
    let mut files = Vec::new();
    conf_files(Path::new(CAPTURES), &mut files);
    files.sort();
    // The recorded scenarios hold 11 config files (dir-many generates its own at run time).
    assert!(files.len() >= 11, "found only {} .conf files", files.len());
    for f in &files {
        let cmds = Parser::with_env(BTreeMap::new()).parse_file(f).unwrap_or_else(|e| panic!("{e}"));
        assert!(!cmds.is_empty(), "{}", f.display());
        for (i, c) in cmds.iter().enumerate() {
            assert!(i == 0 || c.line > cmds[i - 1].line);
        }
    }
}

#[test]
fn sampler_conf_commands() {
    let cmds = parse(&Path::new(CAPTURES).join("ls-l-two-samplers/sampler.conf"));
    let cfg = |n: &str| match &cmds.iter().find(|c| matches!(c, Cmd::Config(p) if p.name == n)) {
        Some(Cmd::Config(p)) => p.clone(),
        _ => panic!("no config for {n}"),
    };
    assert_eq!(cmds.len(), 7);
    assert_eq!(cmds[0], Cmd::MsgEnable);
    assert_eq!(cmds[1], Cmd::Load { name: "meminfo".into(), plugin: "meminfo".into() });
    let m = cfg("meminfo");
    assert_eq!(m.producer.as_deref(), Some("localhost1"));
    assert_eq!(m.instance.as_deref(), Some("localhost1/meminfo"));
    assert_eq!(m.component_id, Some(1));
    assert!(m.attrs.is_empty() && m.keywords.is_empty() && m.schema.is_none());
    assert_eq!(cmds[3], Cmd::Start { name: "meminfo".into(), interval_us: 1_000_000, offset_us: Some(0) });
    assert_eq!(cfg("vmstat").instance.as_deref(), Some("localhost1/vmstat"));
}

#[test]
fn aggregator_conf_commands() {
    let cmds = parse(&Path::new(CAPTURES).join("aggregator/aggregator.conf"));
    assert_eq!(
        cmds,
        vec![
            Cmd::PrdcrAdd {
                name: "p1".into(),
                host: "127.0.0.1".into(),
                port: 10441,
                xprt: "sock".into(),
                ty: PrdcrType::Active,
                reconnect_us: 1_000_000,
                auth: None,
                perm: None,
            },
            Cmd::PrdcrStart { name: "p1".into(), reconnect_us: None },
            Cmd::UpdtrAdd {
                name: "u1".into(),
                interval_us: Some(1_000_000),
                offset_us: Some(100_000),
                push: Push::Off,
                auto_interval: false,
                perm: None,
            },
            Cmd::UpdtrPrdcrAdd { name: "u1".into(), regex: ".*".into() },
            Cmd::UpdtrStart { name: "u1".into(), interval_us: None, offset_us: None, auto_interval: None },
        ]
    );
    let del = parse(&Path::new(CAPTURES).join("aggregator/ctl-del-vmstat.conf"));
    assert_eq!(del, vec![Cmd::Stop { name: "vmstat".into() }, Cmd::Term { name: "vmstat".into() }]);
}

#[test]
fn test_sampler_attrs_are_kept() {
    let cmds = parse(&Path::new(CAPTURES).join("all-types/sampler.conf"));
    let Cmd::Config(c) = &cmds[2] else { panic!("{:?}", cmds[2]) };
    assert_eq!(c.name, "test_sampler");
    assert_eq!(c.get("action"), Some("add_schema"));
    assert_eq!(c.schema.as_deref(), Some("all_types"));
    assert!(c.get("metrics").unwrap().starts_with("component_id:m:u64:7,m_char:m:char:Q"));
}

#[test]
fn errors_name_file_and_line() {
    let text = "load name=meminfo\n\n# c\nconfig name=meminfo producer=p \\\n  instance=i perm=999\n";
    let e = Parser::with_env(BTreeMap::new()).parse_str(text, "s.conf").unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("s.conf", 4));
    assert!(e.to_string().starts_with("s.conf:4: bad value `999` for `perm`"), "{e}");
    let e = Parser::new().parse_str("msg_enable\nfrobnicate a=b\n", "x").unwrap_err();
    assert_eq!((e.line, e.kind), (2, ConfigErrorKind::UnknownVerb("frobnicate".into())));
    let e = Parser::new().parse_str("start name=a interval=1s bogus=1\n", "x").unwrap_err();
    assert_eq!(e.kind, ConfigErrorKind::UnknownAttr { verb: "start".into(), attr: "bogus".into() });
    let e = Parser::new().parse_str("start name=a\n", "x").unwrap_err();
    assert_eq!(e.kind, ConfigErrorKind::Missing { verb: "start".into(), attr: "interval".into() });
    let e = Parser::new().parse_str("start name=a interval=1s offset=600ms\n", "x").unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::BadValue { .. }), "{e}");
    let e = Parser::new().parse_str("updtr_add name=u interval=1s push=sometimes\n", "x").unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::BadValue { ref attr, .. } if attr == "push"));
    let e = Parser::new().parse_str("stop name=a name=b\n", "x").unwrap_err();
    assert_eq!(e.kind, ConfigErrorKind::Duplicate("name".into()));
}

#[test]
fn env_lines_feed_expansion_and_interactive_lines() {
    let mut p = Parser::with_env(BTreeMap::from([("PORT".to_string(), "10444".to_string())]));
    let cmds = p
        .parse_str(
            "env HOST=node7\nlisten xprt=sock port=${PORT} host=${HOST}\nconfig name=x producer=${HOST} instance=${HOST}/x uid=root gid=0 force_integer\n",
            "e",
        )
        .unwrap();
    assert_eq!(cmds[1].cmd, Cmd::Listen { xprt: "sock".into(), port: 10444, host: Some("node7".into()), auth: None });
    let Cmd::Config(c) = &cmds[2].cmd else { panic!() };
    assert_eq!(c.instance.as_deref(), Some("node7/x"));
    assert_eq!((c.uid.clone(), c.gid.clone()), (Some(Owner::Name("root".into())), Some(Owner::Id(0))));
    assert!(c.has_keyword("force_integer"));
    assert_eq!(p.parse_line("  # nothing").unwrap(), None);
    assert_eq!(p.parse_line("strgp_start name=s").unwrap(), Some(Cmd::StrgpStart { name: "s".into() }));
    assert_eq!(
        p.parse_line("strgp_metric_add name=s metric=MemFree").unwrap(),
        Some(Cmd::StrgpMetricAdd { name: "s".into(), metric: "MemFree".into() })
    );
}
