//! Following `_SCAN_HISTORY_` for new scans.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use redis::cmd;

use super::conn::Conn;
use super::{BlissError, SCAN_HISTORY, SCAN_PREFIX, resp};

/// Entries read from the history per round trip.
const HISTORY_BATCH: usize = 256;

/// Hands out the keys of scans created after it started (or after a given history id).
pub struct ScanWatcher {
    conn: Conn,
    session: Option<String>,
    last_id: String,
    pending: VecDeque<String>,
}

impl ScanWatcher {
    /// Follows new scans of `session` (all sessions with `None`) from now on.
    pub fn connect(url: &str, session: Option<&str>) -> Result<ScanWatcher, BlissError> {
        let mut conn = Conn::new(url)?;
        let last =
            conn.query(cmd("XREVRANGE").arg(SCAN_HISTORY).arg("+").arg("-").arg("COUNT").arg(1), Duration::ZERO)?;
        let last = resp::entries(&last).map_err(|e| BlissError::malformed(SCAN_HISTORY, e))?;
        let last_id = last.first().map(|e| e.id.clone()).unwrap_or_else(|| "0-0".to_owned());
        Ok(ScanWatcher { conn, session: session.map(str::to_owned), last_id, pending: VecDeque::new() })
    }

    /// Follows new scans after history entry `since` (e.g. `0-0` for every scan kept).
    pub fn connect_since(url: &str, session: Option<&str>, since: &str) -> Result<ScanWatcher, BlissError> {
        Ok(ScanWatcher { last_id: since.to_owned(), ..ScanWatcher::connect(url, session)? })
    }

    /// The history id of the last scan seen; a later `connect_since` resumes after it.
    pub fn last_id(&self) -> &str {
        &self.last_id
    }

    /// The key of the next new scan of the session, or `None` after `timeout`.
    pub fn next_scan(&mut self, timeout: Duration) -> Result<Option<String>, BlissError> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(key) = self.pending.pop_front() {
                if self.wanted(&key)? {
                    return Ok(Some(key));
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
