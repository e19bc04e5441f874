//! The sets this process serves, shared by every connection.
//!
//! A producer publishes a [`LocalSet`] and keeps the [`SetHandle`]; it writes the set
//! through the handle, which holds the set's lock for the duration of the write, so a
//! reader (a READ_REQ, a push, a DIR) copies a whole image and never a torn one.
//!
//! Connections register interest (push, lookup, directory notify) with a weak reference
//! to their [`ConnInbox`]; the registry drops a dead reference whenever it meets one, and a
//! connection removes all of its registrations when it closes. Notifications are queued in
//! the inbox after every lock is released, then the inbox's waker asks the connection's
//! I/O thread to pump.
//!
//! Lock order: the registry's table lock, then a set's lock; never the other way round,
//! and never an inbox lock while holding either for longer than a push onto it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::FastMap;
use crate::request::dir::{DirEntry, DirInfo, DirTime, render_dir_update};
use crate::request::{DIR_ADD, DIR_DEL, DIR_UPD, RBD_F_PUSH, RBD_F_PUSH_CHANGE};
use crate::set::{LocalSet, TRANSACTION_END, Timestamp};

use super::access::Credentials;

/// Why a set could not be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A set with this instance name is already published (ldmsd: EEXIST).
    #[error("a set named {0:?} is already published")]
    NameTaken(String),
    /// The requested map key is in use.
    #[error("map key {0} is already in use")]
    MapKeyTaken(u32),
    /// The requested set id is in use.
    #[error("set id {0} is already in use")]
    SetIdTaken(u64),
}

/// Where a published set lives on the wire; every field is chosen by the registry unless
/// given (captures replayed in tests need the recorded values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// The set id LOOKUP advertises and PUSH/CANCEL_PUSH name.
    pub set_id: Option<u64>,
    /// The zap map key RENDEZVOUS advertises and READ_REQ names.
    pub map_key: Option<u32>,
    /// The region base address RENDEZVOUS advertises; READ_REQ addresses are absolute.
    pub base: Option<u64>,
}

/// A notification for one connection, queued in its inbox.
#[derive(Debug, Clone)]
pub(crate) enum Note {
    /// A transaction ended (or the producer pushed): the image at that moment.
    Push {
        /// The set's id (the peer's `lookup_set_id`).
        set_id: u64,
        /// The whole image, meta then data.
        image: Bytes,
        /// Its meta generation number.
        meta_gn: u64,
        /// Its meta section size.
        meta_sz: u32,
    },
    /// A directory change: DIR_UPDATE_REPLY JSON (NUL included) and the set's access bits.
    Dir { dir_type: u32, json: Bytes, owner: (u32, u32, u32) },
    /// A set this connection looked up was unpublished.
    Deleted { set_id: u64, name: String },
}

/// Pending pushes of one set a connection may hold before newer ones replace older ones.
const MAX_PENDING_PUSHES: usize = 4;

/// A connection's mailbox for registry notifications.
pub(crate) struct ConnInbox {
    id: u64,
    notes: Mutex<VecDeque<Note>>,
    waker: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
    wake_pending: AtomicBool,
    coalesced: AtomicU64,
}

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

impl ConnInbox {
    pub(crate) fn new() -> Arc<ConnInbox> {
        Arc::new(ConnInbox {
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            notes: Mutex::new(VecDeque::new()),
            waker: Mutex::new(None),
            wake_pending: AtomicBool::new(false),
            coalesced: AtomicU64::new(0),
        })
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Called (from any thread) after notes were queued; at most once until the next take.
    pub(crate) fn set_waker(&self, waker: Box<dyn Fn() + Send + Sync>) {
        *self.waker.lock() = Some(waker);
    }

    /// Pushes replaced by newer ones before the connection took them.
    pub(crate) fn coalesced(&self) -> u64 {
        self.coalesced.load(Ordering::Relaxed)
    }

    fn post(&self, note: Note) {
        {
            let mut q = self.notes.lock();
            if let Note::Push { set_id, .. } = &note {
                let id = *set_id;
                let pending = q.iter().filter(|n| matches!(n, Note::Push { set_id, .. } if *set_id == id)).count();
                if pending >= MAX_PENDING_PUSHES
                    && let Some(old) =
                        q.iter_mut().rev().find(|n| matches!(n, Note::Push { set_id, .. } if *set_id == id))
                {
                    *old = note;
                    self.coalesced.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            q.push_back(note);
        }
        if !self.wake_pending.swap(true, Ordering::AcqRel)
            && let Some(w) = self.waker.lock().as_ref()
        {
            w();
        }
    }

    pub(crate) fn take(&self) -> Option<Note> {
        self.wake_pending.store(false, Ordering::Release);
        self.notes.lock().pop_front()
    }

    pub(crate) fn clear(&self) {
        self.notes.lock().clear();
        *self.waker.lock() = None;
    }
}

struct Pusher {
    conn: u64,
    inbox: Weak<ConnInbox>,
    flags: u32,
}

struct Watcher {
    conn: u64,
    inbox: Weak<ConnInbox>,
}

struct SetState {
    set: LocalSet,
    live: bool,
    pushers: Vec<Pusher>,
    lookers: Vec<Watcher>,
}

/// One published set: its wire identity and its locked state.
pub(crate) struct Entry {
    pub(crate) set_id: u64,
    pub(crate) map_key: u32,
    pub(crate) base: u64,
    pub(crate) name: String,
    pub(crate) schema: String,
    state: Mutex<SetState>,
}

/// What a reader sees of a set at one moment.
#[derive(Debug, Clone)]
pub(crate) struct SetView {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) perm: u32,
    pub(crate) meta_sz: u32,
    pub(crate) data_sz: u32,
    pub(crate) card: u32,
    pub(crate) array_card: u32,
    pub(crate) info: Vec<(String, String)>,
}

/// Why a READ_REQ fails, with the zap status zap_sock answers it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// No such map key (`ZAP_ERR_REMOTE_MAP`).
    NoMap,
    /// The range is not inside the region (`ZAP_ERR_REMOTE_LEN`).
    Range,
    /// The peer may not read the set (`ZAP_ERR_REMOTE_PERMISSION`).
    Access,
}

impl Entry {
    fn owner(st: &SetState) -> (u32, u32, u32) {
        let m = st.set.meta();
        (m.uid, m.gid, m.perm)
    }

    pub(crate) fn view(&self) -> SetView {
        let st = self.state.lock();
        let m = st.set.meta();
        SetView {
            uid: m.uid,
            gid: m.gid,
            perm: m.perm,
            meta_sz: m.meta_sz,
            data_sz: m.data_sz,
            card: m.card() as u32,
            array_card: m.array_card,
            info: st.set.info().to_vec(),
        }
    }

    pub(crate) fn dir_entry(&self) -> (DirEntry, (u32, u32, u32)) {
        let st = self.state.lock();
        (dir_entry(&st.set), Self::owner(&st))
    }

    /// Copies `[addr, addr + len)` of the image if it lies inside the region and `creds`
    /// may read the set.
    /// Hands `[addr, addr + len)` of the image to `out`, under the set's lock (a reader
    /// never sees a half-written transaction), after the bounds and access checks.
    pub(crate) fn read_with<R>(
        &self,
        addr: u64,
        len: u32,
        creds: &Credentials,
        out: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, ReadError> {
        let st = self.state.lock();
        if !st.live {
            return Err(ReadError::NoMap);
        }
        let img = st.set.image();
        let start = addr.checked_sub(self.base).ok_or(ReadError::Range)?;
        let end = start.checked_add(u64::from(len)).ok_or(ReadError::Range)?;
        if end > img.len() as u64 {
            return Err(ReadError::Range);
        }
        let (uid, gid, perm) = Self::owner(&st);
        if !creds.may_read(uid, gid, perm) {
            return Err(ReadError::Access);
        }
        Ok(out(&img[start as usize..end as usize]))
    }
}

/// The directory entry of a set, as ldmsd formats it: `C` when the last transaction
/// ended, `L` for a local set, no `P`.
pub(crate) fn dir_entry(set: &LocalSet) -> DirEntry {
    let m = set.meta();
    let t = set.transaction();
    DirEntry {
        name: m.instance_name.clone(),
        schema: m.schema_name.clone(),
        digest: m.schema_digest.map(|d| d.iter().map(|b| format!("{b:02X}")).collect()).unwrap_or_default(),
        flags: format!("{}L ", if t.flags == TRANSACTION_END { 'C' } else { ' ' }),
        meta_size: m.meta_sz,
        data_size: m.data_sz,
        heap_size: m.heap_sz,
        uid: m.uid,
        gid: m.gid,
        perm: m.perm,
        card: m.card() as u32,
        array_card: m.array_card,
        meta_gn: set.meta_gn(),
        data_gn: set.data_gn(),
        timestamp: DirTime { sec: t.ts.sec, usec: t.ts.usec },
        duration: DirTime { sec: t.dur.sec, usec: t.dur.usec },
        info: set.info().iter().map(|(k, v)| DirInfo { key: k.clone(), value: v.clone() }).collect(),
    }
}

#[derive(Default)]
struct Table {
    by_name: BTreeMap<String, Arc<Entry>>,
    by_id: FastMap<u64, Arc<Entry>>,
    by_key: FastMap<u32, Arc<Entry>>,
    dir_watchers: Vec<Watcher>,
    next_id: u64,
    next_key: u32,
    next_base: u64,
}

/// The sets served to peers (thread-safe; share it with `Arc`).
pub struct SetRegistry {
    table: Mutex<Table>,
}

impl std::fmt::Debug for SetRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetRegistry").field("sets", &self.len()).finish()
    }
}

/// First region address handed out (a plausible user-space address).
const FIRST_BASE: u64 = 0x7f00_0000_1000;

/// Posts every note after the locks are released.
fn deliver(notes: Vec<(Arc<ConnInbox>, Note)>) {
    for (inbox, note) in notes {
        inbox.post(note);
    }
}

impl SetRegistry {
    /// An empty registry.
    pub fn new() -> Arc<SetRegistry> {
        Arc::new(SetRegistry {
            table: Mutex::new(Table { next_id: 1, next_key: 1, next_base: FIRST_BASE, ..Table::default() }),
        })
    }

    /// Number of published sets.
    pub fn len(&self) -> usize {
        self.table.lock().by_name.len()
    }

    /// True if no set is published.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The instance names of the published sets, in byte order.
    pub fn names(&self) -> Vec<String> {
        self.table.lock().by_name.keys().cloned().collect()
    }

    /// The handle of a published set.
    pub fn get(self: &Arc<Self>, name: &str) -> Option<SetHandle> {
        let entry = self.table.lock().by_name.get(name).cloned()?;
        Some(SetHandle { registry: self.clone(), entry })
    }

    /// Publishes `set` with a fresh set id, map key and region address.
    pub fn publish(self: &Arc<Self>, set: LocalSet) -> Result<SetHandle, RegistryError> {
        self.publish_with(set, PublishOptions::default())
    }

    /// Publishes `set`, taking the wire identity fields given in `opts`. Peers watching
    /// the directory hear DIR ADD.
    pub fn publish_with(self: &Arc<Self>, set: LocalSet, opts: PublishOptions) -> Result<SetHandle, RegistryError> {
        let name = set.name().to_string();
        let schema = set.meta().schema_name.clone();
        let size = set.image().len() as u64;
        let (entry, notes) = {
            let mut t = self.table.lock();
            if t.by_name.contains_key(&name) {
                return Err(RegistryError::NameTaken(name));
            }
            let set_id = match opts.set_id {
                Some(id) if t.by_id.contains_key(&id) => return Err(RegistryError::SetIdTaken(id)),
                Some(id) => id,
                None => {
                    while t.by_id.contains_key(&t.next_id) {
                        t.next_id = t.next_id.wrapping_add(1).max(1);
                    }
                    t.next_id
                }
            };
            let map_key = match opts.map_key {
                Some(k) if t.by_key.contains_key(&k) => return Err(RegistryError::MapKeyTaken(k)),
                Some(k) => k,
                None => {
                    while t.by_key.contains_key(&t.next_key) {
                        t.next_key = t.next_key.wrapping_add(1).max(1);
                    }
                    t.next_key
                }
            };
            let base = opts.base.unwrap_or(t.next_base);
            if opts.base.is_none() {
                // Page-aligned regions with a page between them, as mmap'd sets look.
                t.next_base = t.next_base.wrapping_add(size.div_ceil(4096) * 4096 + 4096);
            }
            if opts.set_id.is_none() {
                t.next_id = set_id.wrapping_add(1).max(1);
            }
            if opts.map_key.is_none() {
                t.next_key = map_key.wrapping_add(1).max(1);
            }
            let owner = (set.meta().uid, set.meta().gid, set.meta().perm);
            let json = Bytes::from(render_dir_update(&dir_entry(&set)));
            let entry = Arc::new(Entry {
                set_id,
                map_key,
                base,
                name: name.clone(),
                schema,
                state: Mutex::new(SetState { set, live: true, pushers: Vec::new(), lookers: Vec::new() }),
            });
            t.by_name.insert(name, entry.clone());
            t.by_id.insert(set_id, entry.clone());
            t.by_key.insert(map_key, entry.clone());
            let notes = dir_notes(&mut t.dir_watchers, DIR_ADD, &json, owner, None);
            (entry, notes)
        };
        deliver(notes);
        Ok(SetHandle { registry: self.clone(), entry })
    }

    fn unpublish(&self, entry: &Arc<Entry>) {
        let watchers = {
            let mut t = self.table.lock();
            match t.by_name.get(&entry.name) {
                Some(e) if Arc::ptr_eq(e, entry) => {}
                _ => return,
            }
            t.by_name.remove(&entry.name);
            t.by_id.remove(&entry.set_id);
            t.by_key.remove(&entry.map_key);
            t.dir_watchers.retain(|w| w.inbox.strong_count() > 0);
            t.dir_watchers.iter().map(|w| (w.conn, w.inbox.clone())).collect::<Vec<_>>()
        };
        let (lookers, json, owner) = {
            let mut st = entry.state.lock();
            st.live = false;
            st.pushers.clear();
            let lookers = std::mem::take(&mut st.lookers);
            (lookers, Bytes::from(render_dir_update(&dir_entry(&st.set))), Entry::owner(&st))
        };
        let mut notes = Vec::new();
        for l in &lookers {
            if let Some(inbox) = l.inbox.upgrade() {
                notes.push((inbox, Note::Deleted { set_id: entry.set_id, name: entry.name.clone() }));
            }
        }
        // ldmsd 4.3.4 and later tell a peer that looked the set up with SET_DELETE only
        // (no DIR DEL); a peer that only watches the directory would never hear of it,
        // so it gets DIR DEL.
        for (conn, w) in watchers {
            if lookers.iter().any(|l| l.conn == conn) {
                continue;
            }
            if let Some(inbox) = w.upgrade() {
                notes.push((inbox, Note::Dir { dir_type: DIR_DEL, json: json.clone(), owner }));
            }
        }
        deliver(notes);
    }

    /// The sets in instance-name byte order (ldmsd's set tree order).
    pub(crate) fn entries(&self) -> Vec<Arc<Entry>> {
        self.table.lock().by_name.values().cloned().collect()
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<Arc<Entry>> {
        self.table.lock().by_name.get(name).cloned()
    }

    pub(crate) fn by_id(&self, id: u64) -> Option<Arc<Entry>> {
        self.table.lock().by_id.get(&id).cloned()
    }

    pub(crate) fn by_key(&self, key: u32) -> Option<Arc<Entry>> {
        self.table.lock().by_key.get(&key).cloned()
    }

    pub(crate) fn watch_dir(&self, inbox: &Arc<ConnInbox>) {
        let mut t = self.table.lock();
        if !t.dir_watchers.iter().any(|w| w.conn == inbox.id()) {
            t.dir_watchers.push(Watcher { conn: inbox.id(), inbox: Arc::downgrade(inbox) });
        }
    }

    pub(crate) fn unwatch_dir(&self, conn: u64) {
        self.table.lock().dir_watchers.retain(|w| w.conn != conn && w.inbox.strong_count() > 0);
    }

    /// Records that `inbox`'s connection looked `entry` up (it hears SET_DELETE).
    pub(crate) fn add_looker(&self, entry: &Entry, inbox: &Arc<ConnInbox>) {
        let mut st = entry.state.lock();
        st.lookers.retain(|w| w.inbox.strong_count() > 0);
        if !st.lookers.iter().any(|w| w.conn == inbox.id()) {
            st.lookers.push(Watcher { conn: inbox.id(), inbox: Arc::downgrade(inbox) });
        }
    }

    /// Registers (or updates) `inbox`'s connection for pushes of `entry`.
    pub(crate) fn add_pusher(&self, entry: &Entry, inbox: &Arc<ConnInbox>, flags: u32) -> bool {
        let mut st = entry.state.lock();
        if !st.live {
            return false;
        }
        st.pushers.retain(|p| p.inbox.strong_count() > 0);
        match st.pushers.iter_mut().find(|p| p.conn == inbox.id()) {
            Some(p) => p.flags = flags,
            None => st.pushers.push(Pusher { conn: inbox.id(), inbox: Arc::downgrade(inbox), flags }),
        }
        true
    }

    pub(crate) fn remove_pusher(&self, entry: &Entry, conn: u64) {
        entry.state.lock().pushers.retain(|p| p.conn != conn);
    }

    /// Forgets every registration of connection `conn` (it closed).
    pub(crate) fn forget_conn(&self, conn: u64) {
        let entries = {
            let mut t = self.table.lock();
            t.dir_watchers.retain(|w| w.conn != conn && w.inbox.strong_count() > 0);
            t.by_name.values().cloned().collect::<Vec<_>>()
        };
        for e in entries {
            let mut st = e.state.lock();
            st.pushers.retain(|p| p.conn != conn && p.inbox.strong_count() > 0);
            st.lookers.retain(|w| w.conn != conn && w.inbox.strong_count() > 0);
        }
    }

    /// Registrations held for connections, in all (for leak checks).
    pub fn registrations(&self) -> usize {
        let (dir, entries) = {
            let t = self.table.lock();
            (t.dir_watchers.len(), t.by_name.values().cloned().collect::<Vec<_>>())
        };
        dir + entries
            .iter()
            .map(|e| {
                let st = e.state.lock();
                st.pushers.len() + st.lookers.len()
            })
            .sum::<usize>()
    }
}

/// DIR_UPDATE notes for the live watchers (pruning dead ones), except `skip`.
fn dir_notes(
    watchers: &mut Vec<Watcher>,
    dir_type: u32,
    json: &Bytes,
    owner: (u32, u32, u32),
    skip: Option<u64>,
) -> Vec<(Arc<ConnInbox>, Note)> {
    watchers.retain(|w| w.inbox.strong_count() > 0);
    watchers
        .iter()
        .filter(|w| Some(w.conn) != skip)
        .filter_map(|w| w.inbox.upgrade())
        .map(|inbox| (inbox, Note::Dir { dir_type, json: json.clone(), owner }))
        .collect()
}

/// A producer's handle on a published set (cheap to clone).
#[derive(Clone)]
pub struct SetHandle {
    registry: Arc<SetRegistry>,
    entry: Arc<Entry>,
}

impl std::fmt::Debug for SetHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetHandle")
            .field("name", &self.entry.name)
            .field("set_id", &self.entry.set_id)
            .field("map_key", &self.entry.map_key)
            .field("base", &format_args!("{:#x}", self.entry.base))
            .finish()
    }
}

impl SetHandle {
    /// The set id LOOKUP advertises.
    pub fn set_id(&self) -> u64 {
        self.entry.set_id
    }
    /// The zap map key RENDEZVOUS advertises.
    pub fn map_key(&self) -> u32 {
        self.entry.map_key
    }
    /// The region base address RENDEZVOUS advertises.
    pub fn base(&self) -> u64 {
        self.entry.base
    }
    /// The instance name.
    pub fn name(&self) -> &str {
        &self.entry.name
    }
    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.entry.schema
    }
    /// True until [`unpublish`](Self::unpublish).
    pub fn is_published(&self) -> bool {
        self.entry.state.lock().live
    }

    /// Reads the set under its lock.
    pub fn read<R>(&self, f: impl FnOnce(&LocalSet) -> R) -> R {
        f(&self.entry.state.lock().set)
    }

    /// Writes the set under its lock; readers never see it half-written. Afterwards, if
    /// a transaction ended in `f` (the set is consistent with a new gn and a new
    /// transaction timestamp, or was inside a transaction before), every
    /// peer registered for push-on-change gets the new image; if the set info changed,
    /// directory watchers hear DIR UPD.
    pub fn update<R>(&self, f: impl FnOnce(&mut LocalSet) -> R) -> R {
        let (r, pushes, info_changed) = {
            let mut st = self.entry.state.lock();
            let (gn, trans) = (st.set.data_gn(), st.set.transaction());
            let info_gn = st.set.info_gn();
            let r = f(&mut st.set);
            let after = st.set.transaction();
            // A transaction ended: the set is consistent again with a new gn and a new
            // transaction record (plain writes outside a transaction move only the gn).
            let ended = st.set.data_gn() != gn
                && after.flags == TRANSACTION_END
                && (trans.flags != TRANSACTION_END || after != trans);
            let pushes = if ended && st.live { push_notes(&self.entry, &mut st, RBD_F_PUSH_CHANGE) } else { vec![] };
            (r, pushes, st.live && st.set.info_gn() != info_gn)
        };
        deliver(pushes);
        if info_changed {
            self.dir_update(DIR_UPD);
        }
        r
    }

    /// One transaction: begin at `begin`, `f`, end at `end` (then pushes as
    /// [`update`](Self::update)).
    pub fn transaction<R>(&self, begin: Timestamp, end: Timestamp, f: impl FnOnce(&mut LocalSet) -> R) -> R {
        self.update(|s| {
            s.transaction_begin(begin);
            let r = f(s);
            s.transaction_end(end);
            r
        })
    }

    /// Pushes the current image to every peer registered for push (`ldms_xprt_push`).
    pub fn push(&self) {
        let notes = {
            let mut st = self.entry.state.lock();
            if !st.live {
                return;
            }
            push_notes(&self.entry, &mut st, RBD_F_PUSH)
        };
        deliver(notes);
    }

    fn dir_update(&self, dir_type: u32) {
        let (json, owner) = {
            let st = self.entry.state.lock();
            (Bytes::from(render_dir_update(&dir_entry(&st.set))), Entry::owner(&st))
        };
        let notes = {
            let mut t = self.registry.table.lock();
            dir_notes(&mut t.dir_watchers, dir_type, &json, owner, None)
        };
        deliver(notes);
    }

    /// Removes the set: peers that looked it up get SET_DELETE, peers that only watch
    /// the directory get DIR DEL, reads of its map fail from now on.
    pub fn unpublish(&self) {
        self.registry.unpublish(&self.entry);
    }
}

/// Push notes for the pushers whose flags include `want`, with one shared copy of the image.
fn push_notes(entry: &Entry, st: &mut SetState, want: u32) -> Vec<(Arc<ConnInbox>, Note)> {
    st.pushers.retain(|p| p.inbox.strong_count() > 0);
    let targets: Vec<_> = st.pushers.iter().filter(|p| p.flags & want != 0).filter_map(|p| p.inbox.upgrade()).collect();
    if targets.is_empty() {
        return vec![];
    }
    let image = Bytes::copy_from_slice(st.set.image());
    let (meta_gn, meta_sz) = (st.set.meta_gn(), st.set.meta().meta_sz);
    targets
        .into_iter()
        .map(|inbox| (inbox, Note::Push { set_id: entry.set_id, image: image.clone(), meta_gn, meta_sz }))
        .collect()
}
