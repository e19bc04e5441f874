//! The directory JSON of DIR_REPLY and DIR_UPDATE_REPLY.
//!
//! ldmsd prints the directory with `snprintf`, so its bytes are fixed: a DIR_REPLY part is
//! `{ "directory" : [` + entries + `]}`, the first entry preceded by a space and the others
//! by a comma; a DIR_UPDATE_REPLY is `{ "directory" : [  ` + one entry + ` ]}` and a NUL.
//! Each entry is one line of `"key":value` pairs in a fixed order with no spaces
//! ([`DirEntry`] lists them). [`render_entry`], [`render_dir`], [`split_dir`] and
//! [`render_dir_update`] reproduce those bytes; [`parse_dir`] reads any JSON with the
//! same fields.

use std::fmt::Write as _;

use bytes::Bytes;
use serde::Deserialize;

use super::*;

/// What every DIR_REPLY part starts with.
pub const DIR_PREFIX: &str = "{ \"directory\" : [";
/// What every DIR_REPLY part ends with.
pub const DIR_SUFFIX: &str = "]}";

/// Malformed directory JSON, or an entry that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirError {
    /// Not JSON, or not a directory document.
    #[error("directory JSON: {0}")]
    Json(String),
    /// A `perm` string that is not `-rwxrwxrwx`-style.
    #[error("directory perm {0:?} is not of the form -rwxrwxrwx")]
    Perm(String),
    /// One entry alone does not fit in a DIR_REPLY under the message limit (ldmsd would
    /// loop forever on it).
    #[error("directory entry of {len} bytes does not fit in a {msg_max}-byte message")]
    EntryTooLarge {
        /// The rendered entry's length.
        len: usize,
        /// The message limit.
        msg_max: usize,
    },
}

/// A `{sec, usec}` pair of the directory (the set's last transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct DirTime {
    /// Seconds.
    #[serde(deserialize_with = "de_c_int")]
    pub sec: u32,
    /// Microseconds.
    #[serde(deserialize_with = "de_c_int")]
    pub usec: u32,
}

/// One set_info pair of a directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct DirInfo {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// One set in a directory, with the fields in ldmsd's order.
///
/// The 32-bit numbers are printed with `%d`, so values of 2³¹ and above appear negative
/// in the JSON; parsing accepts both forms and rendering prints them as ldmsd does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirEntry {
    /// Instance name.
    pub name: String,
    /// Schema name.
    pub schema: String,
    /// The schema digest as 64 uppercase hex digits (empty if the set has none).
    pub digest: String,
    /// Three state characters: `C` if the last transaction is complete (else space), `L`
    /// local or `R` remote (else space), `P` if pushed on change (else space).
    pub flags: String,
    /// Meta section size.
    pub meta_size: u32,
    /// Data section size.
    pub data_size: u32,
    /// Heap size.
    pub heap_size: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Permission bits (0o777 at most; the JSON shows them as `-r--r-----`).
    pub perm: u32,
    /// Number of metrics.
    pub card: u32,
    /// Number of data-section copies.
    pub array_card: u32,
    /// Meta generation number.
    pub meta_gn: u64,
    /// Data generation number.
    pub data_gn: u64,
    /// Last transaction's timestamp.
    pub timestamp: DirTime,
    /// Last transaction's duration.
    pub duration: DirTime,
    /// Set_info pairs.
    pub info: Vec<DirInfo>,
}

impl DirEntry {
    /// Whether the set's last transaction was complete (`flags` starts with `C`).
    pub fn is_consistent(&self) -> bool {
        self.flags.starts_with('C')
    }
}

#[derive(Deserialize)]
struct DocIn {
    directory: Vec<EntryIn>,
}

#[derive(Deserialize)]
struct EntryIn {
    name: String,
    schema: String,
    // Older peers omit these two; ldmsd's own parser tolerates that.
    #[serde(default)]
    digest: String,
    flags: String,
    #[serde(deserialize_with = "de_c_int")]
    meta_size: u32,
    #[serde(deserialize_with = "de_c_int")]
    data_size: u32,
    #[serde(default, deserialize_with = "de_c_int")]
    heap_size: u32,
    #[serde(deserialize_with = "de_c_int")]
    uid: u32,
    #[serde(deserialize_with = "de_c_int")]
    gid: u32,
    perm: String,
    #[serde(deserialize_with = "de_c_int")]
    card: u32,
    #[serde(deserialize_with = "de_c_int")]
    array_card: u32,
    meta_gn: u64,
    data_gn: u64,
    timestamp: DirTime,
    duration: DirTime,
    info: Vec<DirInfo>,
}

/// A number printed with `%d` from a u32: either sign is accepted, in 32 bits.
fn de_c_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = i64::deserialize(d)?;
    if let Ok(u) = u32::try_from(v) {
        Ok(u)
    } else if let Ok(i) = i32::try_from(v) {
        Ok(i as u32)
    } else {
        Err(serde::de::Error::custom(format!("{v} does not fit in 32 bits")))
    }
}

/// The JSON text of a DIR reply's `json` field: without DIR_UPDATE_REPLY's trailing NUL.
pub fn json_text(json: &[u8]) -> &[u8] {
    let end = json.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &json[..end]
}

/// Parses one directory document (a DIR_REPLY part or a DIR_UPDATE_REPLY; trailing NULs
/// are ignored).
pub fn parse_dir(json: &[u8]) -> Result<Vec<DirEntry>, DirError> {
    let doc: DocIn = serde_json::from_slice(json_text(json)).map_err(|e| DirError::Json(e.to_string()))?;
    doc.directory
        .into_iter()
        .map(|e| {
            Ok(DirEntry {
                perm: parse_perm(&e.perm)?,
                name: e.name,
                schema: e.schema,
                digest: e.digest,
                flags: e.flags,
                meta_size: e.meta_size,
                data_size: e.data_size,
                heap_size: e.heap_size,
                uid: e.uid,
                gid: e.gid,
                card: e.card,
                array_card: e.array_card,
                meta_gn: e.meta_gn,
                data_gn: e.data_gn,
                timestamp: e.timestamp,
                duration: e.duration,
                info: e.info,
            })
        })
        .collect()
}

/// Permission bits from `-rwxrwxrwx`.
pub fn parse_perm(s: &str) -> Result<u32, DirError> {
    let b = s.as_bytes();
    let bad = || DirError::Perm(s.to_string());
    if b.len() != 10 || b[0] != b'-' {
        return Err(bad());
    }
    let mut perm = 0;
    for (i, &c) in b[1..].iter().enumerate() {
        let want = b"rwx"[i % 3];
        perm <<= 1;
        match c {
            b'-' => {}
            c if c == want => perm |= 1,
            _ => return Err(bad()),
        }
    }
    Ok(perm)
}

/// `-rwxrwxrwx` for the low nine bits of `perm`, as ldmsd prints it.
pub fn perm_string(perm: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push('-');
    for i in (0..9).rev() {
        s.push(if perm & (1 << i) != 0 { char::from(b"rwx"[2 - i % 3]) } else { '-' });
    }
    s
}

/// Appends `s` as a JSON string. ldmsd prints names raw; escaping only changes names that
/// would have made its output invalid JSON.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends one entry as ldmsd prints it, preceded by `,` if `need_comma`, else a space.
pub fn render_entry(out: &mut String, e: &DirEntry, need_comma: bool) {
    // `%d` of a u32.
    let d = |v: u32| v as i32;
    out.push_str(if need_comma { ",{" } else { " {" });
    let field = |out: &mut String, key: &str, v: &str| {
        let _ = write!(out, "\"{key}\":");
        push_json_str(out, v);
        out.push(',');
    };
    field(out, "name", &e.name);
    field(out, "schema", &e.schema);
    field(out, "digest", &e.digest);
    field(out, "flags", &e.flags);
    let _ = write!(
        out,
        "\"meta_size\":{},\"data_size\":{},\"heap_size\":{},\"uid\":{},\"gid\":{},",
        d(e.meta_size),
        d(e.data_size),
        d(e.heap_size),
        d(e.uid),
        d(e.gid)
    );
    field(out, "perm", &perm_string(e.perm));
    let _ = write!(
        out,
        "\"card\":{},\"array_card\":{},\"meta_gn\":{},\"data_gn\":{},\
         \"timestamp\":{{\"sec\":{},\"usec\":{}}},\"duration\":{{\"sec\":{},\"usec\":{}}},\"info\":[",
        d(e.card),
        d(e.array_card),
        e.meta_gn,
        e.data_gn,
        d(e.timestamp.sec),
        d(e.timestamp.usec),
        d(e.duration.sec),
        d(e.duration.usec)
    );
    for (i, kv) in e.info.iter().enumerate() {
        out.push_str(if i == 0 { "{\"key\":" } else { ",{\"key\":" });
        push_json_str(out, &kv.key);
        out.push_str(",\"value\":");
        push_json_str(out, &kv.value);
        out.push('}');
    }
    out.push_str("]}");
}

/// One DIR_REPLY part holding all of `entries`, with no size limit.
pub fn render_dir(entries: &[DirEntry]) -> String {
    let mut out = String::from(DIR_PREFIX);
    for (i, e) in entries.iter().enumerate() {
        render_entry(&mut out, e, i > 0);
    }
    out.push_str(DIR_SUFFIX);
    out
}

/// The DIR_REPLY parts for `entries` as ldmsd cuts them for a message limit of `msg_max`
/// bytes ([`LDMS_MSG_MAX`] over `sock`): a part takes entries while its JSON, before the
/// closing `]}`, stays under `msg_max` − 35 bytes (the reply header, the three dir fields,
/// and room for `]}` and a NUL). No entries give one empty part.
pub fn split_dir(entries: &[DirEntry], msg_max: usize) -> Result<Vec<String>, DirError> {
    let room = msg_max.saturating_sub(REPLY_HDR_LEN + 12 + 3);
    let mut parts = Vec::new();
    let mut cur = String::new();
    for e in entries {
        loop {
            let fresh = cur.is_empty();
            if fresh {
                cur.push_str(DIR_PREFIX);
            }
            let before = cur.len();
            render_entry(&mut cur, e, !fresh);
            if cur.len() < room {
                break;
            }
            if fresh {
                return Err(DirError::EntryTooLarge { len: cur.len() - before, msg_max });
            }
            cur.truncate(before);
            cur.push_str(DIR_SUFFIX);
            parts.push(std::mem::take(&mut cur));
        }
    }
    if cur.is_empty() {
        cur.push_str(DIR_PREFIX);
    }
    cur.push_str(DIR_SUFFIX);
    parts.push(cur);
    Ok(parts)
}

/// A DIR_UPDATE_REPLY's JSON for one entry: `{ "directory" : [  {…} ]}` and a NUL.
pub fn render_dir_update(entry: &DirEntry) -> Vec<u8> {
    let mut out = String::from("{ \"directory\" : [ ");
    render_entry(&mut out, entry, false);
    out.push_str(" ]}\0");
    out.into_bytes()
}

/// A DIR_REPLY body carrying `json` (one part), as ldmsd fills it: type LIST, no NUL,
/// `json_data_len` the JSON's length.
///
/// # Panics
/// If `json` is longer than `u32::MAX` bytes.
pub fn dir_reply(json: impl Into<Bytes>, more: bool) -> ReplyBody {
    let json = json.into();
    ReplyBody::Dir {
        update: false,
        dir_type: DIR_LIST,
        more: u32::from(more),
        json_data_len: u32::try_from(json.len()).expect("DIR JSON longer than u32::MAX"),
        json,
    }
}

/// A DIR_UPDATE_REPLY body for `entry` ([`DIR_ADD`], [`DIR_DEL`] or [`DIR_UPD`]), as
/// ldmsd fills it: the JSON NUL-terminated and `json_data_len` counting the NUL.
pub fn dir_update_reply(dir_type: u32, entry: &DirEntry) -> ReplyBody {
    let json = render_dir_update(entry);
    ReplyBody::Dir {
        update: true,
        dir_type,
        more: 0,
        json_data_len: u32::try_from(json.len()).expect("DIR JSON longer than u32::MAX"),
        json: json.into(),
    }
}

/// The DIR_REPLY replies answering a DIR with xid `xid`: [`split_dir`]'s parts, `more`
/// set on all but the last.
pub fn dir_replies(xid: u64, entries: &[DirEntry], msg_max: usize) -> Result<Vec<Reply>, DirError> {
    let parts = split_dir(entries, msg_max)?;
    let n = parts.len();
    Ok(parts.into_iter().enumerate().map(|(i, p)| Reply::new(xid, 0, dir_reply(p, i + 1 < n))).collect())
}
