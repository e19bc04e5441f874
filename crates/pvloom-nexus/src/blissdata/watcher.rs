//! Following `_SCAN_HISTORY_` for new scans.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use redis::cmd;

use super::conn::{Backoff, Conn};
use super::{BlissError, SCAN_HISTORY, SCAN_PREFIX, resp};

/// Entries read from the history per round trip.
const HISTORY_BATCH: usize = 256;

/// Hands out the keys of scans created after it started (or after a given history id).
///
/// Once connected it outlives Redis going away: a lost connection is retried (bounded
/// backoff) for as long as it takes, `next_scan` answering `None` meanwhile, and the
/// history is followed on from the last id seen when Redis is back (new entries of a
/// restarted Redis have later ids: they are taken from its clock).
pub struct ScanWatcher {
    conn: Conn,
    session: Option<String>,
    last_id: String,
    pending: VecDeque<String>,
    down_since: Option<Instant>,
    backoff: Backoff,
    reconnects: u64,
}

impl ScanWatcher {
    /// Follows new scans of `session` (all sessions with `None`) from now on.
    pub fn connect(url: &str, session: Option<&str>) -> Result<ScanWatcher, BlissError> {
        let mut conn = Conn::new(url)?;
        let last =
            conn.query(cmd("XREVRANGE").arg(SCAN_HISTORY).arg("+").arg("-").arg("COUNT").arg(1), Duration::ZERO)?;
        let last = resp::entries(&last).map_err(|e| BlissError::malformed(SCAN_HISTORY, e))?;
        let last_id = last.first().map(|e| e.id.clone()).unwrap_or_else(|| "0-0".to_owned());
        Ok(ScanWatcher {
            conn,
            session: session.map(str::to_owned),
            last_id,
            pending: VecDeque::new(),
            down_since: None,
            backoff: Backoff::new(),
            reconnects: 0,
        })
    }

    /// Follows new scans after history entry `since` (e.g. `0-0` for every scan kept).
    pub fn connect_since(url: &str, session: Option<&str>, since: &str) -> Result<ScanWatcher, BlissError> {
        Ok(ScanWatcher { last_id: since.to_owned(), ..ScanWatcher::connect(url, session)? })
    }

    /// The history id of the last scan seen; a later `connect_since` resumes after it.
    pub fn last_id(&self) -> &str {
        &self.last_id
    }

    /// How long Redis has been unreachable, if it is now.
    pub fn down_for(&self) -> Option<Duration> {
        self.down_since.map(|t| t.elapsed())
    }

    /// How many times the connection came back after being lost.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The key of the next new scan of the session, or `None` after `timeout` (also while
    /// Redis is unreachable). Errors are the data's (a malformed history), not the
    /// connection's.
    pub fn next_scan(&mut self, timeout: Duration) -> Result<Option<String>, BlissError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.try_next(deadline) {
                Ok(found) => {
                    if let Some(since) = self.down_since.take() {
                        self.reconnects += 1;
                        tracing::info!(after = ?since.elapsed(), "Redis reachable again; following {SCAN_HISTORY} on");
                    }
                    self.backoff.reset();
                    return Ok(found);
                }
                Err(e) if e.is_connection() => {
                    if self.down_since.is_none() {
                        tracing::warn!("lost Redis, reconnecting: {e}");
                        self.down_since = Some(Instant::now());
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    std::thread::sleep(left.min(self.backoff.next_delay()));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn try_next(&mut self, deadline: Instant) -> Result<Option<String>, BlissError> {
        loop {
            while let Some(key) = self.pending.pop_front() {
                match self.wanted(&key) {
                    Ok(true) => return Ok(Some(key)),
                    Ok(false) => {}
                    Err(e) => {
                        // Not looked at yet: look again once Redis answers.
                        self.pending.push_front(key);
                        return Err(e);
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // BLOCK 0 would wait forever: block at least 1 ms, and stop once past the deadline.
            let block = left.as_millis().max(1) as u64;
            let answer = self.conn.query(
                cmd("XREAD")
                    .arg("COUNT")
                    .arg(HISTORY_BATCH)
                    .arg("BLOCK")
                    .arg(block)
                    .arg("STREAMS")
                    .arg(SCAN_HISTORY)
                    .arg(&self.last_id),
                Duration::from_millis(block),
            )?;
            let streams = resp::xread(&answer).map_err(|e| BlissError::malformed(SCAN_HISTORY, e))?;
            for (_, entries) in streams {
                for entry in entries {
                    self.last_id = entry.id.clone();
                    match entry.field("key").map(|k| String::from_utf8_lossy(k).into_owned()) {
                        Some(key) if key.starts_with(SCAN_PREFIX) => self.pending.push_back(key),
                        _ => tracing::warn!(id = %entry.id, "{SCAN_HISTORY} entry without a scan key, skipped"),
                    }
                }
            }
            if self.pending.is_empty() && left.is_zero() {
                return Ok(None);
            }
            if self.pending.is_empty() && Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    fn wanted(&mut self, key: &str) -> Result<bool, BlissError> {
        let Some(session) = &self.session else { return Ok(true) };
        let answer = self.conn.query(cmd("JSON.GET").arg(key).arg("$.id.session"), Duration::ZERO)?;
        let Some(text) = resp::text(&answer) else {
            // Gone (deleted) before we looked: not a scan to follow.
            return Ok(false);
        };
        let sessions: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
        Ok(sessions.first().and_then(|s| s.as_str()) == Some(session.as_str()))
    }
}
