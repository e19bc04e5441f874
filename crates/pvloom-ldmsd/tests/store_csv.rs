//! store_csv's header and rows, compared with the strings the real plugin's format strings
//! produce (`store_csv_common.c` `csv_row_format_header` / `__primitive_metric_header`:
//! `#` then `Time,Time_usec`, `ProducerName`, then `,name` per column or `,name0,name1…`
//! for an expanded array; `store_csv.c` `store_time_job_app`: `%u.%06u,%u` then
//! `,producer`; `store_metric`: `,%lu` for U64, `,%.17g` for D64, `,%.9g` for F32,
//! `,%s` for a char array up to its NUL, `,"a:b"` for an unexpanded array).

use std::path::Path;

use pvloom_ldms::set::{LocalSet, MetricSpec, MetricValue, Schema, SetInfo, Timestamp, ValueType};
use pvloom_ldmsd::config::{Cmd, Parser, PluginConfig};
use pvloom_ldmsd::sampler::sampler_with_root;
use pvloom_ldmsd::store_csv::{CsvOptions, CsvStore, Flush, columns, format};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const TS: Timestamp = Timestamp { sec: 1_795_436_485, usec: 1_551 };

fn cfg(line: &str) -> PluginConfig {
    match Parser::new().parse_line(line).unwrap() {
        Some(Cmd::Config(c)) => c,
        c => panic!("{c:?}"),
    }
}

fn sampled(plugin: &str, fixture: &str) -> LocalSet {
    let mut s = sampler_with_root(plugin, &Path::new(FIXTURES).join(fixture)).unwrap();
    let c = cfg(&format!("config name={plugin} producer=localhost1 instance=localhost1/{plugin} component_id=1"));
    let mut set = s.configure(&c).unwrap().remove(0);
    s.sample(&mut set, TS).unwrap();
    set
}

fn header_and_rows(o: &CsvOptions, set: &LocalSet, metrics: &[&str]) -> (String, String) {
    let meta = pvloom_ldms::set::SetMeta::decode(set.meta_bytes()).unwrap();
    let data = set.data().unwrap();
    let names: Vec<String> = metrics.iter().map(|s| s.to_string()).collect();
    let cols = columns(&meta, &names).unwrap();
    let h = format::header(o, &meta, &data, &cols).unwrap().unwrap();
    let mut r = String::new();
    format::rows(&mut r, o, &meta, &data, &cols, TS).unwrap();
    (h, r)
}

#[test]
fn meminfo_header_and_row() {
    let set = sampled("meminfo", "ls-l-meminfo");
    let (h, r) = header_and_rows(&CsvOptions::new("/tmp"), &set, &[]);
    assert!(
        h.starts_with("#Time,Time_usec,ProducerName,component_id,job_id,app_id,MemTotal,MemFree,MemAvailable,Buffers,")
    );
    assert!(h.ends_with(",DirectMap4k,DirectMap2M,DirectMap1G\n"));
    assert_eq!(h.matches(',').count(), 2 + 57);
    assert!(r.starts_with("1795436485.001551,1551,localhost1,1,0,0,24684084,23669240,23825108,2816,474724,0,"), "{r}");
    assert!(r.ends_with(",30720,2066432,25165824\n"));

    // strgp_metric_add: only those columns, in the order added.
    let (h, r) = header_and_rows(&CsvOptions::new("/tmp"), &set, &["MemFree", "component_id", "Active(anon)"]);
    assert_eq!(h, "#Time,Time_usec,ProducerName,MemFree,component_id,Active(anon)\n");
    assert_eq!(r, "1795436485.001551,1551,localhost1,23669240,1,1556\n");

    // time_format=1, userdata=1, ietfcsv=1.
    let o = CsvOptions::from_config(&cfg("config name=store_csv path=/x time_format=1 userdata=1 ietfcsv=1")).unwrap();
    let (h, r) = header_and_rows(&o, &set, &["MemFree"]);
    assert_eq!(h, "#\"Time_msec\",\"Time_usec\",\"ProducerName\",\"MemFree.userdata\",\"MemFree.value\"\n");
    assert_eq!(r, "1795436485001,551,localhost1,0,23669240\n");
}

fn array_set() -> LocalSet {
    let schema = Schema {
        name: "arr".into(),
        metrics: vec![
            MetricSpec::new("component_id", ValueType::U64, 1, true),
            MetricSpec::new("u", ValueType::U64Array, 3, false),
            MetricSpec::new("s", ValueType::S64Array, 2, false),
            MetricSpec::new("f", ValueType::F32, 1, false),
            MetricSpec::new("d", ValueType::D64Array, 2, false),
            MetricSpec::new("name", ValueType::CharArray, 8, false),
            MetricSpec::new("c", ValueType::Char, 1, false),
            MetricSpec::new("i8", ValueType::S8, 1, false),
        ],
        digest: None,
        meta_sz: None,
        heap_sz: None,
    };
    let info = SetInfo { producer: "p1".into(), instance: "p1/arr".into(), uid: 0, gid: 0, perm: 0o440, meta_gn: 1 };
    let mut s = LocalSet::new(&schema, &info).unwrap();
    s.set_u64(0, 7).unwrap();
    s.transaction_begin(TS);
    s.set(1, &MetricValue::U64Array(vec![1, 2, 3])).unwrap();
    s.set(2, &MetricValue::S64Array(vec![-5, 6])).unwrap();
    s.set(3, &MetricValue::F32(0.1)).unwrap();
    s.set(4, &MetricValue::D64Array(vec![0.1, 2.5])).unwrap();
    s.set(5, &MetricValue::CharArray(b"eth0\0\0\0\0".to_vec())).unwrap();
    s.set(6, &MetricValue::Char(b'Q')).unwrap();
    s.set(7, &MetricValue::S8(-100)).unwrap();
    s.transaction_end(TS);
    s
}

#[test]
fn arrays_expanded_and_not() {
    let set = array_set();
    let (h, r) = header_and_rows(&CsvOptions::new("/x"), &set, &[]);
    assert_eq!(h, "#Time,Time_usec,ProducerName,component_id,u0,u1,u2,s0,s1,f,d0,d1,name,c,i8\n");
    assert_eq!(r, "1795436485.001551,1551,p1,7,1,2,3,-5,6,0.100000001,0.10000000000000001,2.5,eth0,Q,-100\n");
    let o = CsvOptions::from_config(&cfg("config name=store_csv path=/x expand_array=false array_sep=;")).unwrap();
    let (h, r) = header_and_rows(&o, &set, &[]);
    assert_eq!(h, "#Time,Time_usec,ProducerName,component_id,u,s,f,d,name,c,i8\n");
    // The S64 branch of store_metric ignores array_sep and quotes with `"` and `,`.
    assert_eq!(
        r,
        "1795436485.001551,1551,p1,7,\"1;2;3\",\"-5,6\",0.100000001,\"0.10000000000000001;2.5\",eth0,Q,-100\n"
    );
}

#[test]
fn list_of_records_one_row_per_entry() {
    let set = sampled("procnetdev2", "ls-l-records");
    let (h, r) = header_and_rows(&CsvOptions::new("/x"), &set, &[]);
    assert_eq!(
        h,
        "#Time,Time_usec,ProducerName,component_id,job_id,app_id,netdev_list_entry_idx,netdev_list_name,\
         netdev_list_rx_bytes,netdev_list_rx_packets,netdev_list_rx_errs,netdev_list_rx_drop,netdev_list_rx_fifo,\
         netdev_list_rx_frame,netdev_list_rx_compressed,netdev_list_rx_multicast,netdev_list_tx_bytes,\
         netdev_list_tx_packets,netdev_list_tx_errs,netdev_list_tx_drop,netdev_list_tx_fifo,netdev_list_tx_colls,\
         netdev_list_tx_carrier,netdev_list_tx_compressed\n"
    );
    let rows: Vec<&str> = r.lines().collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0],
        "1795436485.001551,1551,localhost1,1,0,0,0,lo,480273033,2218547,0,0,0,0,0,0,480273033,2218547,0,0,0,0,0,0"
    );
    assert!(rows[3].starts_with("1795436485.001551,1551,localhost1,1,0,0,3,eth0,342988079,10138,"));
}

#[test]
fn files_paths_and_flushing() {
    let dir = std::env::temp_dir().join(format!("pvloom-store-csv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let set = sampled("meminfo", "ls-l-meminfo");
    let meta = pvloom_ldms::set::SetMeta::decode(set.meta_bytes()).unwrap();
    let data = set.data().unwrap();
    let line = format!("config name=store_csv path={} buffer=0", dir.display());
    let o = CsvOptions::from_config(&cfg(&line)).unwrap();
    assert_eq!(o.flush, Flush::Always);
    let metrics = vec!["MemFree".to_string()];
    let mut st = CsvStore::open(&o, "node", "meminfo", &metrics).unwrap();
    assert_eq!(st.path(), dir.join("node/meminfo"));
    st.store(&meta, &data).unwrap();
    st.store(&meta, &data).unwrap();
    let text = std::fs::read_to_string(dir.join("node/meminfo")).unwrap();
    // The row's time is the transaction's end time (`ldms_transaction_timestamp_get`).
    let t = data.trans.ts;
    let row = format!("{}.{:06},{},localhost1,23669240\n", t.sec, t.usec, t.usec);
    assert_eq!(text, format!("#Time,Time_usec,ProducerName,MemFree\n{row}{row}"));
    drop(st);

    let line = format!("config name=store_csv path={} altheader=1 buffer=2 buffertype=3", dir.display());
    let o = CsvOptions::from_config(&cfg(&line)).unwrap();
    let mut st = CsvStore::open(&o, "alt", "meminfo", &metrics).unwrap();
    st.store(&meta, &data).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("alt/meminfo.HEADER")).unwrap(),
        "#Time,Time_usec,ProducerName,MemFree\n"
    );
    assert_eq!(std::fs::read_to_string(dir.join("alt/meminfo")).unwrap(), "");
    st.store(&meta, &data).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("alt/meminfo")).unwrap(), format!("{row}{row}"));
    let bad = CsvStore::open(&o, "alt", "meminfo", &["Nope".to_string()]).unwrap().store(&meta, &data);
    assert!(bad.is_err());
    for line in [
        "config name=store_csv",
        "config name=store_csv path=/x rollover=10 rolltype=1",
        "config name=store_csv path=/x buffertype=3",
        "config name=store_csv path=/x buffer=4",
    ] {
        assert!(CsvOptions::from_config(&cfg(line)).is_err(), "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
