//! What the server-side replays share: SENDRECV decoding, the masks of bytes that vary run
//! to run, and bringing a set's data header to a captured directory entry. Also included by
//! pvloom-ldmsd's dir-many replay (`#[path]`), whose sets come from its test_sampler.

use pvloom_ldms::request::dir::DirEntry;
use pvloom_ldms::request::{self, Message, RendezvousBody, RendezvousMsg, RequestBody};
use pvloom_ldms::set::LocalSet;
use pvloom_ldms::zap::{Frame, Msg};

/// The LDMS message inside a SENDRECV frame.
pub fn sendrecv(f: &Frame) -> Option<Message> {
    match &f.msg {
        Msg::SendRecv(d) => request::decode(d).ok(),
        _ => None,
    }
}

const TS: usize = 0;
const DUR: usize = 8;
const FLAGS: usize = 16;
const GN: usize = 24;

fn put32(d: &mut [u8], at: usize, v: u32) {
    d[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Brings the set's data header to what a directory entry shows.
pub fn patch_to_dir(s: &mut LocalSet, e: &DirEntry) {
    let mut d = s.data_bytes().to_vec();
    put32(&mut d, TS, e.timestamp.sec);
    put32(&mut d, TS + 4, e.timestamp.usec);
    put32(&mut d, DUR, e.duration.sec);
    put32(&mut d, DUR + 4, e.duration.usec);
    put32(&mut d, FLAGS, if e.is_consistent() { 2 } else { 1 });
    d[GN..GN + 8].copy_from_slice(&e.data_gn.to_le_bytes());
    s.replace_data(&d).unwrap();
    for i in &e.info {
        s.set_info(&i.key, &i.value);
    }
}

/// Masks varying bytes of an s2c frame (given raw bytes) in place.
pub fn mask(raw: &mut [u8], f: &Frame) {
    match &f.msg {
        Msg::ReadResp(_) | Msg::WriteResp(_) => {}
        _ => raw[8..12].fill(0),
    }
    match &f.msg {
        Msg::Accepted(_) => raw[24 + 48..24 + 52].fill(0), // pid
        Msg::Rendezvous(r) => {
            if let Ok(RendezvousMsg { body: RendezvousBody::Lookup(l), .. }) = RendezvousMsg::decode(&r.msg)
                && l.profile.is_some()
            {
                let n = raw.len();
                raw[n - 32..].fill(0);
            }
        }
        Msg::SendRecv(d) => {
            if let Ok(Message::Request(q)) = request::decode(d)
                && matches!(q.body, RequestBody::SetDelete { .. })
            {
                raw[24..32].fill(0); // LDMS xid (ldmsd: a pointer)
            }
        }
        _ => {}
    }
}
