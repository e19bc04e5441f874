//! Recorded streams for the client tests: frames in order, and the mapping of the
//! recorded client's opaque ids (LDMS xids, read cookies, push ids) to a new client's.

use std::collections::HashMap;
use std::path::PathBuf;

use pvloom_ldms::request;

pub struct Capture {
    pub c2s: Vec<Vec<u8>>,
    /// Each server frame, with the number of client frames recorded before it, and its time.
    pub s2c: Vec<(Vec<u8>, usize, f64)>,
}

pub fn frames(stream: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 8 <= stream.len() {
        let len = u32::from_be_bytes(stream[off + 4..off + 8].try_into().unwrap()) as usize;
        out.push((off, stream[off..off + len].to_vec()));
        off += len;
    }
    assert_eq!(off, stream.len(), "whole frames");
    out
}

pub fn scenario(name: &str) -> PathBuf {
    super::common::root().join(name)
}

/// Loads connection `conn` of a scenario, ordering server frames after the client frames
/// that the proxy saw first.
pub fn load(name: &str, conn: u64) -> Capture {
    let dir = scenario(name);
    let prefix = if conn == 0 { String::new() } else { format!("conn{conn}.") };
    let c2s_bin = std::fs::read(dir.join(format!("{prefix}c2s.bin"))).unwrap();
    let s2c_bin = std::fs::read(dir.join(format!("{prefix}s2c.bin"))).unwrap();
    // Per direction: (byte offset reached, time) after each chunk.
    let mut marks: HashMap<&str, Vec<(usize, f64)>> = HashMap::new();
    let text = std::fs::read_to_string(dir.join("chunks.jsonl")).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["conn"].as_u64() != Some(conn) || v.get("hex").is_none() {
            continue;
        }
        let d = if v["dir"] == "c2s" { "c2s" } else { "s2c" };
        let m = marks.entry(d).or_default();
        let start = m.last().map_or(0, |x| x.0);
        m.push((start + v["len"].as_u64().unwrap() as usize, v["t"].as_f64().unwrap()));
    }
    let time_of = |d: &str, byte: usize| marks[d].iter().find(|(end, _)| *end > byte).map(|x| x.1).unwrap();
    let c2s = frames(&c2s_bin);
    let c2s_end_times: Vec<f64> = c2s.iter().map(|(off, f)| time_of("c2s", off + f.len() - 1)).collect();
    let s2c = frames(&s2c_bin)
        .into_iter()
        .map(|(off, f)| {
            let t = time_of("s2c", off);
            let before = c2s_end_times.iter().filter(|&&ct| ct < t).count();
            (f, before, t)
        })
        .collect();
    Capture { c2s: c2s.into_iter().map(|x| x.1).collect(), s2c }
}

pub fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
pub fn put_le64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Recorded id → new client's id.
#[derive(Default)]
pub struct Ids {
    xids: HashMap<u64, u64>,
    ctxts: HashMap<u64, u64>,
    push_ids: HashMap<u64, u64>,
}

impl Ids {
    /// Learn the ids of a client frame from the recorded frame in its place.
    pub fn learn(&mut self, rec: &[u8], mine: &[u8]) {
        match be32(rec, 0) >> 16 {
            2 => {
                let rx = le64(rec, 24);
                if rx != 0 {
                    self.xids.insert(rx, le64(mine, 24));
                }
            }
            3 => {
                self.push_ids.insert(le64(rec, 64), le64(mine, 64));
            }
            4 => {
                self.ctxts.insert(le64(rec, 12), le64(mine, 12));
            }
            _ => {}
        }
    }

    /// A recorded server frame with the new client's ids.
    pub fn rewrite(&self, mut f: Vec<u8>) -> Vec<u8> {
        let ty = be32(&f, 0) >> 16;
        let map = |m: &HashMap<u64, u64>, v: u64| m.get(&v).copied().unwrap_or(v);
        match ty {
            2 if f.len() >= 36 => {
                let cmd = be32(&f, 32);
                if request::is_reply_cmd(cmd) {
                    {
                        let v = map(&self.xids, le64(&f, 24));
                        put_le64(&mut f, 24, v)
                    };
                }
                if cmd == request::CMD_PUSH_REPLY {
                    {
                        let v = map(&self.push_ids, le64(&f, 44));
                        put_le64(&mut f, 44, v)
                    };
                }
            }
            3 => {
                let v = map(&self.xids, le64(&f, 40));
                put_le64(&mut f, 40, v)
            }
            5 => {
                let v = map(&self.ctxts, le64(&f, 12));
                put_le64(&mut f, 12, v)
            }
            _ => {}
        }
        f
    }
}
