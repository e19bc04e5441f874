//! Set images taken from the recorded READ_RESP frames, decoded and compared value by value
//! with `frames.txt` (the reference decoder's `--detail` output) and `client-output.txt`.

use std::collections::HashMap;
use std::path::PathBuf;

use pvloom_ldms::set::{MetricDesc, MetricValue, SetData, SetMeta, ValueType, decode_image};

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ldms-captures");

fn read(scenario: &str, file: &str) -> Vec<u8> {
    let p = PathBuf::from(CAPTURES).join(scenario).join(file);
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!("capture file {} is missing ({e}): the set tests need /work/shared/ldms-captures", p.display())
    })
}

fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}
fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
}
fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().unwrap())
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// Minimal zap frame walker: (stream offset, type, frame bytes).
fn frames(stream: &[u8]) -> Vec<(usize, u16, &[u8])> {
    let mut out = Vec::new();
    let mut o = 0;
    while o + 20 <= stream.len() {
        let len = be32(stream, o + 4) as usize;
        assert!(len >= 20 && o + len <= stream.len(), "bad zap frame at {o}");
        out.push((o, be16(stream, o), &stream[o..o + len]));
        o += len;
    }
    assert_eq!(o, stream.len(), "trailing bytes in the stream");
    out
}

/// A READ_RESP with the map key and set offset it was read at.
struct Read<'a> {
    conn: u32,
    s2c_off: usize,
    key: u32,
    set_off: u64,
    img: &'a [u8],
}

fn reads<'a>(conn: u32, c2s: &[u8], s2c: &'a [u8]) -> Vec<Read<'a>> {
    let mut req = HashMap::new(); // zap xid -> (key, src_ptr)
    for (_, t, f) in frames(c2s) {
        if t == 4 {
            req.insert(le32(f, 8), (le32(f, 20), be64(f, 24)));
        }
    }
    let mut base = HashMap::new(); // map key -> region address
    let mut out = Vec::new();
    for (off, t, f) in frames(s2c) {
        if t == 3 {
            base.insert(le32(f, 20), be64(f, 28));
        }
        if t == 5 {
            assert_eq!(be16(f, 20), 0, "READ_RESP status");
            let (key, src) = req[&le32(f, 8)];
            let n = be32(f, 32) as usize;
            out.push(Read { conn, s2c_off: off, key, set_off: src - base[&key], img: &f[36..36 + n] });
        }
    }
    out
}

/// The `frames.txt` lines of the frame at `conn`/s2c/`off`, without their 8-space indent.
fn frame_block(frames_txt: &str, conn: u32, off: usize) -> Vec<String> {
    let tag = format!("conn={conn} s2c off={off}] zap READ_RESP");
    let mut it = frames_txt.lines().skip_while(|l| !l.contains(&tag));
    assert!(it.next().is_some(), "frame {tag} not in frames.txt");
    it.take_while(|l| !l.starts_with('[') && !l.starts_with('#'))
        .map(|l| l.strip_prefix("        ").unwrap_or(l).to_string())
        .collect()
}

// ---- rendering in the reference decoder's format ----

fn py_float(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Shortest round-trip digits, then Python's repr rules (exponent if < -4 or >= 16).
    let e = format!("{v:e}");
    let (mant, exp) = e.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    let (neg, mant) = mant.strip_prefix('-').map_or((false, mant), |m| (true, m));
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let s = if (-4..16).contains(&exp) {
        if exp >= 0 {
            let ip = exp as usize + 1;
            if digits.len() <= ip {
                format!("{}{}.0", digits, "0".repeat(ip - digits.len()))
            } else {
                format!("{}.{}", &digits[..ip], &digits[ip..])
            }
        } else {
            format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
        }
    } else {
        let m = if digits.len() == 1 { digits.clone() } else { format!("{}.{}", &digits[..1], &digits[1..]) };
        format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    };
    if neg { format!("-{s}") } else { s }
}

fn f32s(v: f32) -> String {
    format!("{}(bits 0x{:08x})", py_float(v as f64), v.to_bits())
}
fn d64s(v: f64) -> String {
    format!("{}(bits 0x{:016x})", py_float(v), v.to_bits())
}

fn py_str(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut o = String::from(q);
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            c if c == q => {
                o.push('\\');
                o.push(c)
            }
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push(q);
    o
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn list<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
    format!("[{}]", v.iter().map(f).collect::<Vec<_>>().join(", "))
}

fn prim(v: &MetricValue) -> String {
    use MetricValue as V;
    match v {
        V::Char(c) => py_str(&char::from(*c).to_string()),
        V::U8(x) => x.to_string(),
        V::S8(x) => x.to_string(),
        V::U16(x) => x.to_string(),
        V::S16(x) => x.to_string(),
        V::U32(x) => x.to_string(),
        V::S32(x) => x.to_string(),
        V::U64(x) => x.to_string(),
        V::S64(x) => x.to_string(),
        V::F32(x) => f32s(*x),
        V::D64(x) => d64s(*x),
        V::CharArray(raw) => {
            let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
            format!("{} (raw {})", py_str(&String::from_utf8_lossy(&raw[..end])), hex(raw))
        }
        V::U8Array(a) => list(a, |x| x.to_string()),
        V::S8Array(a) => list(a, |x| x.to_string()),
        V::U16Array(a) => list(a, |x| x.to_string()),
        V::S16Array(a) => list(a, |x| x.to_string()),
        V::U32Array(a) => list(a, |x| x.to_string()),
        V::S32Array(a) => list(a, |x| x.to_string()),
        V::U64Array(a) => list(a, |x| x.to_string()),
        V::S64Array(a) => list(a, |x| x.to_string()),
        V::F32Array(a) => list(a, |x| f32s(*x)),
        V::D64Array(a) => list(a, |x| d64s(*x)),
        V::Timestamp(t) => format!("{}.{:06} (timestamp sec.usec)", t.sec, t.usec),
        v => panic!("not primitive: {v:?}"),
    }
}

const VT: [&str; 29] = [
    "none",
    "char",
    "u8",
    "s8",
    "u16",
    "s16",
    "u32",
    "s32",
    "u64",
    "s64",
    "f32",
    "d64",
    "char[]",
    "u8[]",
    "s8[]",
    "u16[]",
    "s16[]",
    "u32[]",
    "s32[]",
    "u64[]",
    "s64[]",
    "f32[]",
    "d64[]",
    "list",
    "list_entry",
    "record_type",
    "record_inst",
    "record_array",
    "timestamp",
];

fn tname(t: ValueType, cnt: u32) -> String {
    let n = VT[t.code() as usize];
    if t.is_array() { format!("{}[{cnt}]", &n[..n.len() - 2]) } else { n.to_string() }
}

fn flag_str(f: u8) -> String {
    let mut s = String::new();
    for (b, c) in [(2, 'M'), (1, 'D'), (4, 'R')] {
        if f & b != 0 {
            s.push(c)
        }
    }
    s
}

struct Render<'a> {
    meta: &'a SetMeta,
    out: Vec<String>,
    values: usize,
}

impl Render<'_> {
    fn push(&mut self, s: String) {
        self.out.push(s);
    }
    fn record_inst(&mut self, r: &pvloom_ldms::set::RecordInst, ind: &str) {
        self.push(format!(
            "{ind}record_inst@data+{}: flags=2 set_data_off={} rec_type=m[{}]",
            r.set_data_off, r.set_data_off, r.rec_type
        ));
        let rt = self.meta.metrics[r.rec_type as usize].record_type.as_ref().unwrap();
        assert_eq!(rt.members.len(), r.members.len());
        for (m, v) in rt.members.iter().zip(&r.members) {
            self.values += 1;
            let s = format!("{ind}  .{} {} @+{} = {}", m.name, tname(m.ty, m.count), m.data_offset, prim(v));
            self.push(s);
        }
    }
    fn list(&mut self, entries: &[pvloom_ldms::set::ListEntry], ind: &str) {
        let head = entries.first().map_or(0, |e| e.heap_off);
        let tail = entries.last().map_or(0, |e| e.heap_off);
        self.push(format!(
            "{ind}list head={head} tail={tail} count={} (heap-relative; heap at data+{})",
            entries.len(),
            self.meta.heap_base()
        ));
        for (n, e) in entries.iter().enumerate() {
            let next = entries.get(n + 1).map_or(0, |x| x.heap_off);
            let prev = if n == 0 { 0 } else { entries[n - 1].heap_off };
            let ty = e.value.ty();
            let cnt = e.value.count();
            let pre = format!(
                "{ind}  [{n}] @heap+{} next={next} prev={prev} type={} count={cnt}",
                e.heap_off,
                tname(ty, cnt as u32)
            );
            match &e.value {
                MetricValue::List(l) => {
                    self.push(pre + ":");
                    self.list(l, &format!("{ind}    "));
                }
                MetricValue::RecordInst(r) => {
                    self.push(pre + ":");
                    self.record_inst(r, &format!("{ind}    "));
                }
                v => {
                    self.values += 1;
                    self.push(format!("{pre} = {}", prim(v)));
                }
            }
        }
    }
    fn value_lines(&mut self, d: &MetricDesc, v: &MetricValue, ind: &str) {
        match v {
            MetricValue::List(l) => self.list(l, ind),
            MetricValue::RecordArray { rec_type, inst_sz, elems } => {
                self.push(format!(
                    "{ind}record_array@data+{}: inst_sz={inst_sz} rec_type=m[{rec_type}] array_len={}",
                    d.data_offset,
                    elems.len()
                ));
                for (k, r) in elems.iter().enumerate() {
                    self.push(format!("{ind}  [{k}]:"));
                    self.record_inst(r, &format!("{ind}    "));
                }
            }
            v => {
                self.values += 1;
                self.push(format!("{ind}= {}", prim(v)))
            }
        }
    }
}

fn meta_hdr(m: &SetMeta) -> String {
    format!(
        "set meta hdr: producer={} meta_gn={} ver={}.{}.{}.{} flags={} card={} meta_sz={} data_sz={} uid={} gid={} perm=0o{:o} array_card={} heap_sz={}",
        py_str(&m.producer),
        m.meta_gn,
        m.version[0],
        m.version[1],
        m.version[2],
        m.version[3],
        m.flags,
        m.card(),
        m.meta_sz,
        m.data_sz,
        m.uid,
        m.gid,
        m.perm,
        m.array_card,
        m.heap_sz
    )
}

fn data_hdr(d: &SetData, at: u64) -> String {
    format!(
        "data hdr@{at}: ts={}.{:06} dur={}.{:06} trans_flags={} set_off={} gn={} size={} meta_gn={} curr_idx={}",
        d.trans.ts.sec,
        d.trans.ts.usec,
        d.trans.dur.sec,
        d.trans.dur.usec,
        d.trans.flags,
        d.set_off,
        d.data_gn,
        d.size,
        d.meta_gn,
        d.curr_idx
    )
}

/// The descriptor lines (with meta values) as the reference decoder prints them.
fn render_meta(r: &mut Render<'_>) {
    let meta = r.meta;
    for (i, m) in meta.metrics.iter().enumerate() {
        let mut line = format!(
            "  m[{i}] desc@{} {} {} {}{} {}+{} count={}",
            m.desc_offset,
            flag_str(m.flags),
            tname(m.ty, m.count),
            py_str(&m.name),
            match m.unit.as_deref() {
                None | Some("") => String::new(),
                Some(u) => format!(" unit={}", py_str(u)),
            },
            if m.is_meta() { "meta" } else { "data" },
            m.data_offset,
            m.count
        );
        if m.user_data != 0 {
            line += &format!(" user_data=0x{:x}", m.user_data);
        }
        if let Some(rt) = &m.record_type {
            r.push(line);
            r.push(format!("      record_type@meta+{}: n={} inst_sz={}", m.data_offset, rt.members.len(), rt.inst_sz));
            for (j, mm) in rt.members.iter().enumerate() {
                let mut l = format!(
                    "        member {j}: {} unit={} type={} count={} inst_off={} flags={}",
                    py_str(&mm.name),
                    py_str(mm.unit.as_deref().unwrap_or("")),
                    tname(mm.ty, mm.count),
                    mm.count,
                    mm.data_offset,
                    mm.flags
                );
                if mm.user_data != 0 {
                    l += &format!(" user_data=0x{:x}", mm.user_data);
                }
                r.push(l);
            }
        } else if let Some(v) = &meta.values[i] {
            r.values += 1;
            r.push(format!("{line} = {}", prim(v)));
        } else {
            r.push(line);
        }
    }
}

fn render_data(r: &mut Render<'_>, data: &SetData) {
    for (i, m) in r.meta.metrics.iter().enumerate() {
        let Some(v) = &data.values[i] else { continue };
        let head = format!("  m[{i}] {} {}", tname(m.ty, m.count), py_str(&m.name));
        let mut sub = Render { meta: r.meta, out: vec![], values: 0 };
        sub.value_lines(m, v, "      ");
        r.values += sub.values;
        if sub.out.len() == 1 {
            r.push(format!("{head} {}", sub.out[0].trim()));
        } else {
            r.push(format!("{head}:"));
            r.out.extend(sub.out);
        }
    }
}

struct Checked {
    sets: usize,
    values: usize,
}

/// Decode every READ_RESP of the scenario's connections and compare with frames.txt. With
/// `detail`, frames.txt has the reference decoder's value lines; otherwise only the headers.
fn check_scenario(scenario: &str, conns: &[u32], detail: bool) -> (Checked, Vec<(SetMeta, SetData)>) {
    let frames_txt = String::from_utf8(read(scenario, "frames.txt")).unwrap();
    let mut checked = Checked { sets: 0, values: 0 };
    let mut full = Vec::new();
    for &conn in conns {
        let (c2s, s2c) = if conn == 0 {
            (read(scenario, "c2s.bin"), read(scenario, "s2c.bin"))
        } else {
            (read(scenario, &format!("conn{conn}.c2s.bin")), read(scenario, &format!("conn{conn}.s2c.bin")))
        };
        let mut metas: HashMap<u32, SetMeta> = HashMap::new();
        for rd in reads(conn, &c2s, &s2c) {
            let block = frame_block(&frames_txt, rd.conn, rd.s2c_off);
            let mut mine = Vec::new();
            let (meta, data, fresh_meta) = if rd.set_off == 0 {
                let (meta, data) =
                    decode_image(rd.img).unwrap_or_else(|e| panic!("{scenario} conn{conn} @{}: {e}", rd.s2c_off));
                mine.push(meta_hdr(&meta));
                let same = metas.get(&rd.key) == Some(&meta);
                (meta, data, !same)
            } else {
                let meta = metas[&rd.key].clone();
                assert_eq!(rd.set_off, meta.meta_sz as u64, "data-only read offset");
                let data = SetData::decode(&meta, rd.img)
                    .unwrap_or_else(|e| panic!("{scenario} conn{conn} @{}: {e}", rd.s2c_off));
                (meta, Some(data), false)
            };
            if let Some(d) = &data {
                let at = if rd.set_off == 0 { meta.meta_sz as u64 } else { 0 };
                mine.push(data_hdr(d, at));
            }
            let mut r = Render { meta: &meta, out: mine, values: 0 };
            if fresh_meta {
                render_meta(&mut r);
            }
            if let Some(d) = &data {
                render_data(&mut r, d);
            }
            let values = r.values;
            let mine = r.out;
            let theirs: Vec<String> = block
                .iter()
                .filter(|l| !l.starts_with("status=") && !l.starts_with("detail:"))
                .filter(|l| detail || l.starts_with("set meta hdr") || l.starts_with("data hdr"))
                .cloned()
                .collect();
            let mine: Vec<String> = if detail {
                mine
            } else {
                mine.into_iter().filter(|l| l.starts_with("set meta hdr") || l.starts_with("data hdr")).collect()
            };
            for (k, (a, b)) in mine.iter().zip(&theirs).enumerate() {
                assert_eq!(a, b, "{scenario} conn{conn} READ_RESP @{} line {k}", rd.s2c_off);
            }
            assert_eq!(mine.len(), theirs.len(), "{scenario} conn{conn} READ_RESP @{}: line counts", rd.s2c_off);
            checked.sets += 1;
            if detail {
                checked.values += values;
            }
            if let Some(d) = data {
                full.push((meta.clone(), d));
            }
            metas.insert(rd.key, meta);
        }
    }
    eprintln!("{scenario}: {} set images, {} values compared with frames.txt", checked.sets, checked.values);
    (checked, full)
}

/// ldms_ls prints `M|D type name value` per metric; compare the scalar lines.
fn check_ldms_ls(scenario: &str, sets: &[(SetMeta, SetData)]) -> usize {
    let out = String::from_utf8(read(scenario, "client-output.txt")).unwrap();
    let mut n = 0;
    for (meta, data) in sets {
        let head = format!("{}: consistent", meta.instance_name);
        let mut lines = out.lines().skip_while(|l| !l.starts_with(&head));
        assert!(lines.next().is_some(), "{head} not in client-output.txt");
        assert!(data.is_consistent(meta));
        let mut rows: Vec<String> = Vec::new();
        let mut list_recs: Option<Vec<pvloom_ldms::set::RecordInst>> = None;
        let flush = |rows: &mut Vec<String>, recs: &mut Option<Vec<pvloom_ldms::set::RecordInst>>, n: &mut usize| {
            if let Some(recs) = recs.take() {
                // ldms_ls prints a record list as a table: a header row, then one row per
                // record instance: "name" then the u64 members.
                let body: Vec<&String> = rows.iter().filter(|r| r.trim_start().starts_with('"')).collect();
                assert_eq!(body.len(), recs.len(), "record rows");
                for (row, rec) in body.iter().zip(&recs) {
                    let t: Vec<&str> = row.split_whitespace().collect();
                    assert_eq!(t.len(), rec.members.len(), "{row}");
                    for (tok, v) in t.iter().zip(&rec.members) {
                        let s = match v {
                            MetricValue::CharArray(raw) => {
                                let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
                                format!("\"{}\"", String::from_utf8_lossy(&raw[..end]))
                            }
                            MetricValue::U64(x) => x.to_string(),
                            v => panic!("unexpected member {v:?}"),
                        };
                        assert_eq!(*tok, s, "{row}");
                        *n += 1;
                    }
                }
            }
            rows.clear();
        };
        for l in lines {
            if l.starts_with("  ") && list_recs.is_some() {
                rows.push(l.to_string());
                continue;
            }
            flush(&mut rows, &mut list_recs, &mut n);
            let t: Vec<&str> = l.split_whitespace().collect();
            if t.len() < 3 || !(t[0] == "M" || t[0] == "D") {
                if l.trim().is_empty() {
                    break;
                }
                continue;
            }
            let i = meta.index_of(t[2]).unwrap_or_else(|| panic!("no metric {}", t[2]));
            if meta.metrics[i].ty == ValueType::RecordType {
                assert_eq!(t[1], "record_type");
                continue;
            }
            let v = meta.values[i].as_ref().or(data.values[i].as_ref()).unwrap();
            match v {
                MetricValue::U64(x) => {
                    assert_eq!(t[1], "u64");
                    assert_eq!(t[3], x.to_string(), "{} {}", meta.instance_name, t[2]);
                    n += 1;
                }
                MetricValue::List(l) => {
                    assert_eq!(t[1], "list<>");
                    list_recs = Some(
                        l.iter()
                            .map(|e| match &e.value {
                                MetricValue::RecordInst(r) => r.clone(),
                                v => panic!("not a record: {v:?}"),
                            })
                            .collect(),
                    );
                }
                v => panic!("unexpected {v:?}"),
            }
        }
        flush(&mut rows, &mut list_recs, &mut n);
    }
    n
}

#[test]
fn ls_l_meminfo() {
    let (c, sets) = check_scenario("ls-l-meminfo", &[0], false);
    assert_eq!(c.sets, 2);
    let n = check_ldms_ls("ls-l-meminfo", &sets);
    assert_eq!(sets[0].0.card(), n);
    eprintln!("ls-l-meminfo: {n} values compared with client-output.txt");
}

#[test]
fn all_types() {
    let (c, _) = check_scenario("all-types", &[0, 1], true);
    assert_eq!(c.sets, 10);
    assert!(c.values > 0);
}

#[test]
fn list_record() {
    let (c, _) = check_scenario("list-record", &[0, 1], true);
    assert_eq!(c.sets, 15);
}

#[test]
fn ls_l_records() {
    let (c, sets) = check_scenario("ls-l-records", &[0], false);
    assert_eq!(c.sets, 2);
    let n = check_ldms_ls("ls-l-records", &sets);
    eprintln!("ls-l-records: {n} values compared with client-output.txt");
}

/// Every captured image: decode, encode, decode again; the values are unchanged.
#[test]
fn captures_reencode() {
    let mut n = 0;
    for sc in ["ls-l-meminfo", "ls-l-records", "all-types", "list-record"] {
        let conns: &[u32] = if sc.starts_with("ls-l") { &[0] } else { &[0, 1] };
        let (_, sets) = check_scenario(sc, conns, sc.starts_with("a") || sc.starts_with("li"));
        for (meta, data) in sets {
            let m2 = SetMeta::decode(&meta.encode().unwrap()).unwrap();
            assert_eq!(meta_hdr(&m2), meta_hdr(&meta), "{sc}");
            assert_eq!(m2.schema_digest, meta.schema_digest, "{sc}");
            for (a, b) in m2.metrics.iter().zip(meta.metrics.iter()) {
                assert_eq!(a, b, "{sc}");
            }
            assert!(m2 == meta, "{sc}: re-encoded meta differs");
            let d2 = SetData::decode(&meta, &data.encode(&meta).unwrap()).unwrap();
            let strip = |d: &SetData| -> Vec<Option<MetricValue>> {
                d.values.iter().map(|v| v.as_ref().map(|v| v.without_locations())).collect()
            };
            assert_eq!(strip(&d2), strip(&data));
            n += 1;
        }
    }
    eprintln!("{n} captured images re-encoded");
}

/// Laying out the captured schemas from their descriptors gives ldmsd's offsets and sizes.
#[test]
fn layout_matches_captures() {
    use pvloom_ldms::set::{MetricSpec, Schema, SetInfo};
    let mut n = 0;
    for sc in ["ls-l-meminfo", "ls-l-records", "all-types", "list-record"] {
        let conns: &[u32] = if sc.starts_with("ls-l") { &[0] } else { &[0, 1] };
        let (_, sets) = check_scenario(sc, conns, !sc.starts_with("ls-l"));
        for (meta, data) in sets {
            let spec = |m: &MetricDesc| MetricSpec {
                name: m.name.clone(),
                unit: m.unit.clone(),
                ty: m.ty,
                count: m.count,
                meta: m.is_meta(),
                members: m
                    .record_type
                    .as_ref()
                    .map(|rt| {
                        rt.members
                            .iter()
                            .map(|mm| MetricSpec {
                                unit: mm.unit.clone(),
                                ..MetricSpec::new(&mm.name, mm.ty, mm.count, false)
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                record_type: match data.values.iter().zip(meta.metrics.iter()).find(|(_, d)| d.name == m.name) {
                    Some((Some(MetricValue::RecordArray { rec_type, .. }), _)) => Some(*rec_type),
                    _ => None,
                },
            };
            let schema = Schema {
                name: meta.schema_name.clone(),
                metrics: meta.metrics.iter().map(spec).collect(),
                digest: meta.schema_digest,
                meta_sz: None,
                heap_sz: Some(meta.heap_sz),
            };
            let info = SetInfo {
                producer: meta.producer.clone(),
                instance: meta.instance_name.clone(),
                uid: meta.uid,
                gid: meta.gid,
                perm: meta.perm,
                meta_gn: meta.meta_gn,
            };
            let laid = schema.layout(&info).unwrap();
            for (a, b) in laid.metrics.iter().zip(meta.metrics.iter()) {
                if let (Some(x), Some(y)) = (&a.record_type, &b.record_type) {
                    for (p, q) in x.members.iter().zip(&y.members) {
                        assert_eq!(p, q, "{sc} {} member", a.name);
                    }
                }
                assert_eq!(a, b, "{sc} {}", meta.instance_name);
            }
            // ldmsd's meta_sz is its own estimate, at least the layout's end.
            assert!(laid.meta_sz <= meta.meta_sz, "{sc}: meta_sz {} vs {}", laid.meta_sz, meta.meta_sz);
            let laid = Schema { meta_sz: Some(meta.meta_sz), ..schema.clone() }.layout(&info).unwrap();
            let mut laid = laid;
            laid.values = meta.values.clone();
            assert_eq!(meta_hdr(&laid), meta_hdr(&meta), "{sc}");
            assert_eq!(laid.values, meta.values, "{sc}");
            assert!(laid == meta, "{sc} {}: header fields differ", meta.instance_name);
            // And the whole image built from the layout decodes to the captured values.
            let img = pvloom_ldms::set::encode_image(&laid, &data).unwrap();
            let (m2, d2) = decode_image(&img).unwrap();
            assert!(m2 == meta, "{sc}: image from the layout: meta differs");
            let strip = |d: &SetData| -> Vec<Option<MetricValue>> {
                d.values.iter().map(|v| v.as_ref().map(|v| v.without_locations())).collect()
            };
            assert_eq!(strip(&d2.unwrap()), strip(&data), "{sc}");
            n += 1;
        }
    }
    eprintln!("{n} layouts match the captures");
}
