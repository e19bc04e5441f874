//! [`ScanEvent`]s written as blissdata writes a scan.

use std::time::Duration;

use redis::{cmd, pipe};
use serde_json::Value;

use super::codec;
use super::conn::Conn;
use super::doc;
use super::{
    BlissError, PROTOCOL_KEY, PROTOCOL_VERSION, SCAN_HISTORY, SCAN_PREFIX, SEAL_ID, STREAM_PREFIX, resp, ulid,
};
use crate::model::{ScanEvent, ScanMeta, ScanState};

/// `_SCAN_HISTORY_` is capped near this many entries, as blissdata caps it.
const HISTORY_MAXLEN: usize = 2048;

struct Published {
    key: String,
    doc: Value,
    meta: ScanMeta,
    state_key: String,
    stream_keys: Vec<String>,
    written: Vec<u64>,
    sealed: Vec<bool>,
    state: ScanState,
}

/// Writes scans into a blissdata database (one set up by `DataStore(url, init_db=True)`).
pub struct ScanPublisher {
    conn: Conn,
    scan: Option<Published>,
}

impl ScanPublisher {
    /// Connects and checks the database speaks blissdata protocol 1.
    pub fn connect(url: &str) -> Result<ScanPublisher, BlissError> {
        let mut conn = Conn::new(url)?;
        let version = conn.query(cmd("GET").arg(PROTOCOL_KEY), Duration::ZERO)?;
        let protocol = |reason: String| BlissError::Protocol { url: url.to_owned(), reason };
        match resp::text(&version) {
            None => return Err(protocol(format!("no {PROTOCOL_KEY}: not a blissdata database (not initialized)"))),
            Some(v) if v.trim().parse::<i64>().ok() == Some(PROTOCOL_VERSION) => {}
            Some(v) => return Err(protocol(format!("{PROTOCOL_KEY} is {v:?}, only {PROTOCOL_VERSION} is supported"))),
        }
        Ok(ScanPublisher { conn, scan: None })
    }

    /// The key of the scan being published.
    pub fn key(&self) -> Option<&str> {
        self.scan.as_ref().map(|s| s.key.as_str())
    }

    /// Writes one event; answers the new scan's key for `Begin`.
    pub fn publish(&mut self, event: &ScanEvent) -> Result<Option<String>, BlissError> {
        match event {
            ScanEvent::Begin(meta) => self.begin(meta).map(Some),
            ScanEvent::State(state) => self.state(*state).map(|()| None),
            ScanEvent::Info(info) => self.info(info).map(|()| None),
            ScanEvent::Data { stream, first_index, points } => {
                let scan = self.scan_mut()?;
                let desc =
                    scan.meta.streams.get(*stream).ok_or_else(|| {
                        bad(format!("Data for stream {stream}, scan has {}", scan.meta.streams.len()))
                    })?;
                if scan.sealed[*stream] {
                    return Err(bad(format!("Data for stream {} after its seal", desc.name)));
                }
                if *first_index != scan.written[*stream] {
                    return Err(bad(format!(
                        "Data for stream {} at {first_index}, {} written",
                        desc.name, scan.written[*stream]
                    )));
                }
                let entries =
                    codec::encode(&desc.encoding, points).map_err(|e| bad(format!("stream {}: {e}", desc.name)))?;
                let key = scan.stream_keys[*stream].clone();
                let mut p = pipe();
                let mut index = *first_index;
                for (payload, len) in &entries {
                    let c = p.cmd("XADD").arg(&key).arg(format!("{index}-1")).arg("payload").arg(payload.as_slice());
                    if *len > 1 {
                        c.arg("len").arg(*len);
                    }
                    index += len;
                }
                self.conn.pipe(&p)?;
                self.scan_mut()?.written[*stream] = index;
                Ok(None)
            }
            ScanEvent::Sealed { stream, total } => {
                let scan = self.scan_mut()?;
                let name = scan
                    .meta
                    .streams
                    .get(*stream)
                    .map(|d| d.name.clone())
                    .ok_or_else(|| bad(format!("Sealed for stream {stream}")))?;
                if *total != scan.written[*stream] {
                    return Err(bad(format!(
                        "stream {name} sealed at {total} points, {} written",
                        scan.written[*stream]
                    )));
                }
                if !scan.sealed[*stream] {
                    self.seal(*stream)?;
                }
                Ok(None)
            }
            ScanEvent::Fault(fault) => {
                // blissdata has no fault: end the scan as a deleted one is, closed with a reason.
                if let Some(scan) = &mut self.scan
                    && scan.state < ScanState::Closed
                {
                    if let Some(info) = scan.doc.get_mut("info").and_then(Value::as_object_mut) {
                        info.insert("end_reason".into(), Value::String("FAILURE".into()));
                        info.insert("end_error".into(), Value::String(fault.reason.clone()));
                    }
                    self.state(ScanState::Closed)?;
                }
                Ok(None)
            }
        }
    }

    fn scan_mut(&mut self) -> Result<&mut Published, BlissError> {
        self.scan.as_mut().ok_or_else(|| bad("event before Begin".into()))
    }

    fn begin(&mut self, meta: &ScanMeta) -> Result<String, BlissError> {
        if let Some(scan) = &self.scan
            && scan.state < ScanState::Closed
        {
            return Err(bad(format!("Begin while scan {} is not closed", scan.key)));
        }
        let scan_pk = ulid::new();
        let key = format!("{SCAN_PREFIX}{scan_pk}");
        let state_pk = ulid::new();
        let stream_pks: Vec<String> = meta.streams.iter().map(|_| ulid::new()).collect();
        let doc = doc::build(&scan_pk, &ulid::new(), &state_pk, meta, &stream_pks);
        let state_key = format!("{STREAM_PREFIX}{state_pk}");
        let mut p = pipe();
        p.atomic()
            .cmd("JSON.SET")
            .arg(&key)
            .arg("$")
            .arg(doc.to_string())
            .ignore()
            .cmd("XADD")
            .arg(SCAN_HISTORY)
            .arg("MAXLEN")
            .arg("~")
            .arg(HISTORY_MAXLEN)
            .arg("*")
            .arg("key")
            .arg(&key)
            .ignore()
            .cmd("XADD")
            .arg(&state_key)
            .arg("*")
            .arg("state")
            .arg(ScanState::Created.code())
            .ignore();
        self.conn.pipe(&p)?;
        let n = meta.streams.len();
        self.scan = Some(Published {
            key: key.clone(),
            doc,
            meta: ScanMeta { key: key.clone(), ..meta.clone() },
            state_key,
            stream_keys: stream_pks.iter().map(|pk| format!("{STREAM_PREFIX}{pk}")).collect(),
            written: vec![0; n],
            sealed: vec![false; n],
            state: ScanState::Created,
        });
        tracing::debug!(%key, "scan published");
        Ok(key)
    }

    fn state(&mut self, state: ScanState) -> Result<(), BlissError> {
        let scan = self.scan_mut()?;
        if state <= scan.state {
            return Err(bad(format!("state {state:?} after {:?}", scan.state)));
        }
        if state >= ScanState::Stopped {
            // blissdata seals the streams it writes when the scan stops or closes.
            for i in 0..scan.sealed.len() {
                if !self.scan_mut()?.sealed[i] {
                    self.seal(i)?;
                }
            }
        }
        let scan = self.scan_mut()?;
        let mut p = pipe();
        p.atomic()
            .cmd("JSON.SET")
            .arg(&scan.key)
            .arg("$")
            .arg(scan.doc.to_string())
            .ignore()
            .cmd("XADD")
            .arg(&scan.state_key)
            .arg("*")
            .arg("state")
            .arg(state.code())
            .ignore();
        self.conn.pipe(&p)?;
        self.scan_mut()?.state = state;
        Ok(())
    }

    fn info(&mut self, info: &Value) -> Result<(), BlissError> {
        if !info.is_object() {
            return Err(bad("Info is not a JSON object".into()));
        }
        let scan = self.scan_mut()?;
        scan.doc["info"] = info.clone();
        let key = scan.key.clone();
        self.conn.query(cmd("JSON.SET").arg(&key).arg("$.info").arg(info.to_string()), Duration::ZERO)?;
        Ok(())
    }

    fn seal(&mut self, stream: usize) -> Result<(), BlissError> {
        let scan = self.scan_mut()?;
        let key = scan.stream_keys[stream].clone();
        let total = scan.written[stream];
        self.conn.query(cmd("XADD").arg(&key).arg(SEAL_ID).arg("id").arg(total), Duration::ZERO)?;
        self.scan_mut()?.sealed[stream] = true;
        Ok(())
    }
}

fn bad(reason: String) -> BlissError {
    BlissError::BadEvent(reason)
}
