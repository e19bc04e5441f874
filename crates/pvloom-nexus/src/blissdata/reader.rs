//! One scan, from Redis into [`ScanEvent`]s.

use std::time::{Duration, Instant};

use redis::cmd;
use serde_json::Value;

use super::codec::{self, Batch};
use super::conn::{Backoff, Conn};
use super::doc::{self, ScanDoc};
use super::resp::{self, Entry};
use super::{BlissError, SEAL_ID};
use crate::model::{Points, ScanEvent, ScanFault, ScanState};

/// How a [`ScanReader`] copes with a writer or a Redis that goes away.
#[derive(Clone, Debug)]
pub struct ReaderOptions {
    /// How long Redis may be unreachable (reconnects are tried meanwhile, 50 ms apart
    /// doubling to 1 s) before the scan ends with a fault. When Redis answers again the
    /// scan goes on only if it survived: its key exists and every stream read so far still
    /// reaches the entry last read (else a fault says what was lost).
    pub reconnect_window: Duration,
    /// How long after the scan closed its streams may stay unsealed.
    pub seal_timeout: Duration,
    /// How long a scan that is not closed may go without any news (state, point, seal)
    /// before it ends with a fault: the writer is taken for dead. `None`: wait forever.
    pub idle_timeout: Option<Duration>,
    /// Most entries read from one stream per round trip (bounds memory per call).
    pub max_entries_per_read: usize,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            reconnect_window: Duration::from_secs(10),
            seal_timeout: Duration::from_secs(10),
            idle_timeout: None,
            max_entries_per_read: 256,
        }
    }
}

/// Where reading a data stream is.
struct Cursor {
    key: String,
    last_id: String,
    next_index: u64,
    sealed: bool,
}

enum Phase {
    /// Before PREPARED: the states seen so far, held until Begin.
    Waiting {
        states: Vec<ScanState>,
    },
    Streaming {
        doc: Box<ScanDoc>,
        cursors: Vec<Cursor>,
    },
}

/// Reads one blissdata scan as [`ScanEvent`]s.
pub struct ScanReader {
    conn: Conn,
    key: String,
    options: ReaderOptions,
    phase: Phase,
    state_key: Option<String>,
    state_last_id: String,
    state: Option<ScanState>,
    /// The info last handed out.
    info: Value,
    /// When the scan was seen closed (its `State(Closed)` waits for the seals).
    closed_at: Option<Instant>,
    last_news: Instant,
    down_since: Option<Instant>,
    /// The connection was lost: before reading on, check that the scan survived it.
    check_survival: bool,
    backoff: Backoff,
    finished: bool,
}

impl ScanReader {
    /// Reads scan `key` (`esrf:scan:<ULID>`) with the default options.
    pub fn open(url: &str, key: &str) -> Result<ScanReader, BlissError> {
        ScanReader::open_with(url, key, ReaderOptions::default())
    }

    pub fn open_with(url: &str, key: &str, options: ReaderOptions) -> Result<ScanReader, BlissError> {
        Ok(ScanReader {
            conn: Conn::new(url)?,
            key: key.to_owned(),
            options,
            phase: Phase::Waiting { states: Vec::new() },
            state_key: None,
            state_last_id: "0-0".to_owned(),
            state: None,
            info: Value::Null,
            closed_at: None,
            last_news: Instant::now(),
            down_since: None,
            check_survival: false,
            backoff: Backoff::new(),
            finished: false,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the last event (`State(Closed)` or a `Fault`) has been handed out.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Blocks up to `timeout` for news; see the module's documentation for the sequence.
    /// An empty answer before [`is_finished`](Self::is_finished) means nothing new yet.
    pub fn next_events(&mut self, timeout: Duration) -> Result<Vec<ScanEvent>, BlissError> {
        if self.finished {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + timeout;
        loop {
            // Ok(Err(reason)): the scan did not survive a lost connection.
            let outcome = match self.check_reconnected() {
                Ok(Some(reason)) => Ok(Err(reason)),
                Ok(None) => self.step(deadline).map(Ok),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(Err(reason)) => return Ok(self.fault(reason)),
                Ok(Ok(events)) => {
                    if let Some(since) = self.down_since.take() {
                        tracing::info!(key = %self.key, after = ?since.elapsed(), "Redis reachable again; reading on");
                    }
                    self.backoff.reset();
                    if !events.is_empty() {
                        return Ok(events);
                    }
                }
                Err(e) if e.is_connection() => {
                    // Whatever was in Redis may be gone when it answers again.
                    self.check_survival = true;
                    let since = *self.down_since.get_or_insert_with(|| {
                        tracing::warn!(key = %self.key, "lost Redis, reconnecting: {e}");
                        Instant::now()
                    });
                    let after = since.elapsed();
                    if after >= self.options.reconnect_window {
                        let reason =
                            BlissError::Unreachable { url: self.conn.url().to_owned(), after, last: e.to_string() };
                        return Ok(self.fault(format!("scan {}: {reason}", self.key)));
                    }
                    tracing::debug!(key = %self.key, "Redis unreachable, retrying: {e}");
                    let left = deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(left.min(self.backoff.next_delay()));
                }
                Err(e) => return Ok(self.fault(e.to_string())),
            }
            if let Some(idle) = self.options.idle_timeout
                && self.closed_at.is_none()
                && self.down_since.is_none()
                && self.last_news.elapsed() >= idle
            {
                let reason = format!(
                    "scan {}: no news for {:.1} s and not closed (its writer is gone?)",
                    self.key,
                    self.last_news.elapsed().as_secs_f64()
                );
                return Ok(self.fault(reason));
            }
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }

    /// `Some(reason)` if a connection was lost since the last check and the scan did not
    /// survive it; the check is done once per lost connection.
    fn check_reconnected(&mut self) -> Result<Option<String>, BlissError> {
        if !self.check_survival {
            return Ok(None);
        }
        let lost = self.lost_with_the_connection()?;
        self.check_survival = false;
        Ok(lost)
    }

    /// After a lost connection: why the scan cannot go on, if the server now answering
    /// lacks what was read before (the scan's key, or points of a stream — a Redis
    /// restarted without its data, or from an older snapshot).
    fn lost_with_the_connection(&mut self) -> Result<Option<String>, BlissError> {
        let exists = self.conn.query(cmd("EXISTS").arg(&self.key), Duration::ZERO)?;
        if !matches!(exists, redis::Value::Int(n) if n > 0) {
            return Ok(Some(format!(
                "scan {}: its key is gone from Redis after the connection was lost \
                 (Redis restarted without its data?); the scan ends here",
                self.key
            )));
        }
        let mut read: Vec<(String, String)> = Vec::new();
        if let Some(state_key) = &self.state_key
            && self.state_last_id != "0-0"
        {
            read.push((state_key.clone(), self.state_last_id.clone()));
        }
        if let Phase::Streaming { cursors, .. } = &self.phase {
            read.extend(
                cursors.iter().filter(|c| !c.sealed && c.last_id != "0-0").map(|c| (c.key.clone(), c.last_id.clone())),
            );
        }
        for (key, last_read) in read {
            let answer =
                self.conn.query(cmd("XREVRANGE").arg(&key).arg("+").arg("-").arg("COUNT").arg(1), Duration::ZERO)?;
            let last = resp::entries(&answer).map_err(|e| BlissError::malformed(&key, e))?;
            let now = last.first().and_then(|e| e.id_parts());
            if now.is_none_or(|now| Some(now) < id_parts(&last_read)) {
                let now = last.first().map_or("nothing", |e| e.id.as_str());
                return Ok(Some(format!(
                    "scan {}: stream {key} lost entries after the connection was lost (read up to {last_read}, \
                     Redis now has up to {now}: restarted from an older snapshot?); the scan ends here",
                    self.key
                )));
            }
        }
        Ok(None)
    }

    fn fault(&mut self, reason: String) -> Vec<ScanEvent> {
        tracing::warn!(key = %self.key, "{reason}");
        self.finished = true;
        vec![ScanEvent::Fault(ScanFault { reason })]
    }

    /// How long the next blocking read may last.
    fn block_for(&self, deadline: Instant) -> Duration {
        let now = Instant::now();
        let mut until = deadline;
        if let Some(closed) = self.closed_at {
            until = until.min(closed + self.options.seal_timeout);
        } else if let Some(idle) = self.options.idle_timeout {
            until = until.min(self.last_news + idle);
        }
        until.saturating_duration_since(now).max(Duration::from_millis(1))
    }

    fn load_doc(&mut self) -> Result<ScanDoc, BlissError> {
        let answer = self.conn.query(cmd("JSON.GET").arg(&self.key), Duration::ZERO)?;
        match answer {
            redis::Value::Nil => Err(BlissError::malformed(&self.key, "scan not found (no such key)")),
            other => {
                let text =
                    resp::bytes(&other).ok_or_else(|| BlissError::malformed(&self.key, "JSON.GET answered no text"))?;
                doc::parse(&self.key, text)
            }
        }
    }

    fn parse_state(&self, entry: &Entry) -> Result<ScanState, BlissError> {
        let key = self.state_key.as_deref().unwrap_or(&self.key);
        let raw = entry
            .field("state")
            .ok_or_else(|| BlissError::malformed(key, format!("entry {}: field state missing", entry.id)))?;
        resp::parse_u64(raw).and_then(|c| ScanState::from_code(c as i64)).ok_or_else(|| {
            BlissError::malformed(
                key,
                format!("entry {}: field state {:?} is not 0..4", entry.id, String::from_utf8_lossy(raw)),
            )
        })
    }

    /// Takes a new state; an error when it is not newer than the current one.
    fn advance(&mut self, state: ScanState) -> Result<(), BlissError> {
        if let Some(current) = self.state
            && state <= current
        {
            let key = self.state_key.clone().unwrap_or_default();
            return Err(BlissError::malformed(key, format!("state went from {current:?} to {state:?}")));
        }
        self.state = Some(state);
        self.last_news = Instant::now();
        Ok(())
    }

    fn step(&mut self, deadline: Instant) -> Result<Vec<ScanEvent>, BlissError> {
        if matches!(self.phase, Phase::Waiting { .. }) {
            self.step_waiting(deadline)
        } else {
            self.step_streaming(deadline)
        }
    }

    fn step_waiting(&mut self, deadline: Instant) -> Result<Vec<ScanEvent>, BlissError> {
        let state_key = match &self.state_key {
            Some(k) => k.clone(),
            None => {
                let doc = self.load_doc()?;
                self.state_key = Some(doc.state_key.clone());
                doc.state_key
            }
        };
        let block = self.block_for(deadline);
        let answer = self.conn.query(
            cmd("XREAD")
                .arg("COUNT")
                .arg(64)
                .arg("BLOCK")
                .arg(block.as_millis() as u64)
                .arg("STREAMS")
                .arg(&state_key)
                .arg(&self.state_last_id),
            block,
        )?;
        let streams = resp::xread(&answer).map_err(|e| BlissError::malformed(&state_key, e))?;
        for (_, entries) in &streams {
            for entry in entries {
                let state = self.parse_state(entry)?;
                self.advance(state)?;
                self.state_last_id = entry.id.clone();
                if let Phase::Waiting { states } = &mut self.phase {
                    states.push(state);
                }
            }
        }
        if self.state.is_none_or(|s| s < ScanState::Prepared) {
            return Ok(Vec::new());
        }
        // The document and the PREPARED state are written in one transaction: read after it,
        // the document has the streams.
        let doc = self.load_doc()?;
        if doc.state_key != state_key {
            return Err(BlissError::malformed(&self.key, "field state_stream.pk changed"));
        }
        let Phase::Waiting { states } = std::mem::replace(&mut self.phase, Phase::Waiting { states: Vec::new() })
        else {
            return Ok(Vec::new());
        };
        self.info = doc.meta.info.clone();
        let cursors = doc
            .stream_keys
            .iter()
            .map(|k| Cursor { key: k.clone(), last_id: "0-0".into(), next_index: 0, sealed: false })
            .collect();
        let mut events = vec![ScanEvent::Begin(Box::new(doc.meta.clone()))];
        for state in states {
            if state == ScanState::Closed {
                self.closed_at = Some(Instant::now());
            } else {
                events.push(ScanEvent::State(state));
            }
        }
        self.phase = Phase::Streaming { doc: Box::new(doc), cursors };
        Ok(events)
    }

    fn step_streaming(&mut self, deadline: Instant) -> Result<Vec<ScanEvent>, BlissError> {
        let Phase::Streaming { cursors, doc } = &self.phase else { return Ok(Vec::new()) };
        if let Some(closed) = self.closed_at {
            if cursors.iter().all(|c| c.sealed) {
                self.finished = true;
                return Ok(vec![ScanEvent::State(ScanState::Closed)]);
            }
            if closed.elapsed() >= self.options.seal_timeout {
                let open: Vec<_> = doc
                    .meta
                    .streams
                    .iter()
                    .zip(cursors.iter())
                    .filter(|(_, c)| !c.sealed)
                    .map(|(s, c)| format!("{} ({})", s.name, c.key))
                    .collect();
                return Err(BlissError::malformed(
                    &self.key,
                    format!(
                        "scan closed {:.1} s ago but streams are not sealed: {}",
                        closed.elapsed().as_secs_f64(),
                        open.join(", ")
                    ),
                ));
            }
        }
        let state_key = self.state_key.clone().unwrap_or_default();
        let block = self.block_for(deadline);
        let mut xread = cmd("XREAD");
        xread
            .arg("COUNT")
            .arg(self.options.max_entries_per_read.max(1))
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS");
        let open: Vec<usize> = (0..cursors.len()).filter(|&i| !cursors[i].sealed).collect();
        xread.arg(&state_key);
        for &i in &open {
            xread.arg(&cursors[i].key);
        }
        xread.arg(&self.state_last_id);
        for &i in &open {
            xread.arg(&cursors[i].last_id);
        }
        let answer = self.conn.query(&xread, block)?;
        let streams = resp::xread(&answer).map_err(|e| BlissError::malformed(&self.key, format!("XREAD: {e}")))?;

        let mut events = Vec::new();
        let mut new_states = Vec::new();
        for (key, entries) in &streams {
            if entries.is_empty() {
                continue;
            }
            self.last_news = Instant::now();
            if *key == state_key {
                for entry in entries {
                    new_states.push(self.parse_state(entry)?);
                    self.state_last_id = entry.id.clone();
                }
                continue;
            }
            let Phase::Streaming { cursors, doc } = &mut self.phase else { break };
            let Some(index) = cursors.iter().position(|c| c.key == *key) else {
                return Err(BlissError::malformed(&self.key, format!("XREAD answered for stream {key}, not asked")));
            };
            read_data(index, doc, &mut cursors[index], entries, &mut events)?;
        }
        for state in new_states {
            self.advance(state)?;
            let doc = self.load_doc()?;
            if doc.meta.info != self.info {
                self.info = doc.meta.info.clone();
                events.push(ScanEvent::Info(doc.meta.info));
            }
            if state == ScanState::Closed {
                self.closed_at = Some(Instant::now());
            } else {
                events.push(ScanEvent::State(state));
            }
        }
        Ok(events)
    }
}

/// Turns one stream's new entries into `Data` (all points of the read in one event) and
/// `Sealed` events.
fn read_data(
    index: usize,
    doc: &ScanDoc,
    cursor: &mut Cursor,
    entries: &[Entry],
    events: &mut Vec<ScanEvent>,
) -> Result<(), BlissError> {
    let desc = &doc.meta.streams[index];
    let bad = |reason: String| BlissError::malformed(&cursor.key, format!("stream {}: {reason}", desc.name));
    let first_index = cursor.next_index;
    let mut points = codec::empty(&desc.encoding);
    let mut seal = None;
    for entry in entries {
        if seal.is_some() {
            return Err(bad(format!("entry {} after the seal", entry.id)));
        }
        if entry.id == SEAL_ID {
            let total = entry
                .field("id")
                .and_then(resp::parse_u64)
                .ok_or_else(|| bad("seal without a numeric field id".into()))?;
            let read = first_index + points_len(&points) as u64;
            if total != read {
                return Err(bad(format!("sealed at {total} points but {read} were published")));
            }
            seal = Some(total);
            continue;
        }
        let (at, _) = entry.id_parts().ok_or_else(|| bad(format!("entry id {:?} is not <index>-<seq>", entry.id)))?;
        let expected = first_index + points_len(&points) as u64;
        if at != expected {
            return Err(bad(format!("entry {} starts at index {at}, expected {expected} (points missing)", entry.id)));
        }
        let len = match entry.field("len") {
            None => 1,
            Some(raw) => {
                resp::parse_u64(raw).ok_or_else(|| bad(format!("entry {}: field len is not a number", entry.id)))?
            }
        };
        let payload =
            entry.field("payload").ok_or_else(|| bad(format!("entry {}: field payload missing", entry.id)))?;
        codec::decode_into(&desc.encoding, &Batch { len, payload }, &mut points)
            .map_err(|e| bad(format!("entry {}: {e}", entry.id)))?;
        cursor.last_id = entry.id.clone();
    }
    let count = points_len(&points) as u64;
    cursor.next_index = first_index + count;
    if count > 0 {
        events.push(ScanEvent::Data { stream: index, first_index, points });
    }
    if let Some(total) = seal {
        cursor.sealed = true;
        cursor.last_id = SEAL_ID.to_owned();
        events.push(ScanEvent::Sealed { stream: index, total });
    }
    Ok(())
}

/// An entry id `ms-seq` as numbers (ids compare as such, not as text).
fn id_parts(id: &str) -> Option<(u64, u64)> {
    let (a, b) = id.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn points_len(points: &Points) -> usize {
    points.len()
}
