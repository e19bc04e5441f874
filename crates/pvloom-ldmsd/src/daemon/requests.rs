//! LDMSD requests from `ldmsctl` and `ldmsd_controller`: a peer's SEND_MSG records are
//! gathered into requests ([`Reassembler`], one per connection), each answered with a
//! response whose `rsp_err` and text follow ldmsd's handlers in `ldmsd_request.c`.
//!
//! Requests run on a thread of their own, not on the I/O thread that received them:
//! a configuration command may open files (store_csv) or take the aggregator's lock,
//! and peers' replies must not wait for that. The thread holds the daemon weakly, so
//! dropping the [`Daemon`](super::Daemon) ends it.
//!
//! Configuration requests are turned back into a verb and `name=value` attributes and
//! go through the configuration file's parser and executor, so a request and a line of
//! the `-c` file do the same thing.

use std::collections::HashMap;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use bytes::Bytes;
use pvloom_ldms::bus::ClientStats;
use pvloom_ldms::ldmsd_req::{
    self, Attr, Message, RECORD_MARKER, Reassembler, ReassemblyError, ReassemblyLimits, Record, RecordHeader,
    TYPE_REQUEST, TYPE_RESPONSE, attr, req,
};
use pvloom_ldms::server::{Peer, SEND_MSG_MAX};
use serde_json::{Value, json};

use super::aggregator::ProducerState;
use super::{Core, Refusal, errno};
use crate::config::{Cmd, ConfigErrorKind, RawCommand, command_from_raw, lex};

/// What ldmsd answers a request whose attributes do not validate (with `rsp_err` 0:
/// ldmsd passes its validator's boolean result as the error code).
const BAD_REQUEST: &str = "LDMSD received a bad request.";

/// Records waiting for the request thread, all peers together: past this a record is
/// answered at once with ldmsd's EBUSY ("Daemon busy."), so a flood of requests cannot
/// grow the queue.
const QUEUE_DEPTH: usize = 1024;

struct Job {
    peer: Peer,
    data: Bytes,
}

/// Hands a peer's SEND_MSG payloads to the request thread (cheap to clone; the
/// listeners' callbacks hold one each). Never blocks the I/O thread calling it.
#[derive(Clone)]
pub(super) struct RequestSender(mpsc::SyncSender<Job>);

impl RequestSender {
    /// A SEND_MSG from `peer`.
    pub(super) fn request(&self, peer: &Peer, data: Bytes) {
        match self.0.try_send(Job { peer: peer.clone(), data }) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(job)) => {
                tracing::warn!(peer = %peer.remote_addr(), "LDMSD request refused: {QUEUE_DEPTH} are waiting");
                if let Ok(h) = RecordHeader::peek(&job.data)
                    && h.marker == RECORD_MARKER
                    && h.kind == TYPE_REQUEST
                {
                    send(peer, &Message::response_text(h.msg_no, errno::EBUSY as u32, "Daemon busy."));
                }
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                tracing::debug!(peer = %peer.remote_addr(), "LDMSD request dropped: the daemon is stopping");
            }
        }
    }
}

/// The thread answering LDMSD requests; it ends when every sender is gone or the
/// daemon is dropped.
pub(super) struct RequestThread {
    sender: RequestSender,
}

impl RequestThread {
    pub(super) fn start(core: Weak<Core>) -> std::io::Result<RequestThread> {
        let (tx, rx) = mpsc::sync_channel(QUEUE_DEPTH);
        std::thread::Builder::new().name("ldmsd-requests".into()).spawn(move || serve(&core, &rx))?;
        Ok(RequestThread { sender: RequestSender(tx) })
    }

    pub(super) fn sender(&self) -> RequestSender {
        self.sender.clone()
    }
}

fn serve(core: &Weak<Core>, rx: &mpsc::Receiver<Job>) {
    // One reassembler per connection that sent a record, dropped (with whatever it
    // half-gathered) once its peer is gone.
    let mut conns: HashMap<u64, (Peer, Reassembler)> = HashMap::new();
    while let Ok(Job { peer, data }) = rx.recv() {
        let Some(core) = core.upgrade() else { break };
        conns.retain(|_, (p, _)| p.is_connected());
        let (_, gather) =
            conns.entry(peer.id()).or_insert_with(|| (peer.clone(), Reassembler::new(ReassemblyLimits::default())));
        if let Some(reply) = answer_record(&core, gather, &peer, &data) {
            send(&peer, &reply);
        }
    }
}

fn send(peer: &Peer, reply: &Message) {
    for rec in reply.encode_records(SEND_MSG_MAX) {
        if let Err(e) = peer.send(rec) {
            tracing::debug!(peer = %peer.remote_addr(), msg_no = reply.msg_no, "LDMSD response not sent: {e}");
            return;
        }
    }
}

/// A response carrying `text` without its NUL, as ldmsd's `ldmsd_send_error_reply`
/// sends its protocol errors.
fn error_reply(msg_no: u32, rsp_err: i32, text: &str) -> Message {
    let attrs = vec![Attr { id: attr::STRING, value: text.as_bytes().to_vec() }];
    Message { kind: TYPE_RESPONSE, msg_no, code: rsp_err as u32, attrs }
}

/// One SEND_MSG payload: the response once a whole request is in (or the protocol
/// error ldmsd would answer), `None` while records are still expected or for what is
/// not a request at all.
fn answer_record(core: &Core, gather: &mut Reassembler, peer: &Peer, data: &[u8]) -> Option<Message> {
    let at = peer.remote_addr();
    let Ok(header) = RecordHeader::peek(data) else {
        tracing::debug!(peer = %at, len = data.len(), "SEND_MSG ignored: shorter than an LDMSD request header");
        return None;
    };
    if header.marker != RECORD_MARKER {
        // ldmsd answers with message number -1: it cannot trust the header.
        return Some(error_reply(u32::MAX, errno::EINVAL, "Config request is missing record marker"));
    }
    if header.rec_len as usize > SEND_MSG_MAX {
        // ldmsd's record-length advice: E2BIG with its maximum as a host-order u32.
        let max = u32::try_from(SEND_MSG_MAX).unwrap_or(u32::MAX);
        let attrs = vec![Attr { id: attr::REC_LEN, value: max.to_ne_bytes().to_vec() }];
        return Some(Message { kind: TYPE_RESPONSE, msg_no: header.msg_no, code: errno::E2BIG as u32, attrs });
    }
    if header.kind != TYPE_REQUEST {
        // Responses answer requests this daemon sent; it sends none.
        tracing::debug!(peer = %at, kind = header.kind, "LDMSD record ignored: not a request");
        return None;
    }
    let record = match Record::decode(data) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(peer = %at, "bad LDMSD record: {e}");
            return Some(Message::response_text(header.msg_no, 0, BAD_REQUEST));
        }
    };
    match gather.push(&record) {
        Ok(None) => None,
        Ok(Some(request)) => Some(answer(core, &request)),
        Err(ReassemblyError::Duplicate(n)) => {
            // ldmsd's text, missing space included.
            let text = format!("Duplicate message number {n}:{}received", peer.id());
            Some(error_reply(n, errno::EADDRINUSE, &text))
        }
        Err(ReassemblyError::NotFound(n)) => {
            Some(error_reply(n, errno::ENOENT, &format!("The message no {n} was not found.")))
        }
        Err(e @ (ReassemblyError::TooLarge { .. } | ReassemblyError::TooManyInProgress(_))) => {
            tracing::warn!(peer = %at, "LDMSD request refused: {e}");
            Some(Message::response_text(header.msg_no, errno::E2BIG as u32, &e.to_string()))
        }
        Err(ReassemblyError::Body { err, .. }) => {
            tracing::debug!(peer = %at, "bad LDMSD request: {err}");
            Some(Message::response_text(header.msg_no, 0, BAD_REQUEST))
        }
    }
}

/// The response to a whole request.
fn answer(core: &Core, request: &Message) -> Message {
    let msg_no = request.msg_no;
    let reply = |rsp_err: i32, text: &str| Message::response_text(msg_no, rsp_err as u32, text);
    if !request.attrs.iter().all(Attr::nul_terminated) {
        return reply(0, BAD_REQUEST);
    }
    let id = request.code;
    tracing::debug!(msg_no, request = ldmsd_req::request_name(id).unwrap_or("?"), "LDMSD request");
    match id {
        req::CFG_CNTR => reply(0, &core.changes.load(Ordering::Relaxed).to_string()),
        req::GREETING => greeting(request),
        req::MSG_STATS => msg_stats(core, request),
        req::MSG_CLIENT_STATS => msg_client_stats(core, request),
        req::PRDCR_STATUS => prdcr_status(core, request),
        _ => match ldmsd_req::request_name(id) {
            // ldmsd's unimplemented_handler.
            None => reply(errno::ENOSYS, "The request is not implemented"),
            Some(verb) => configure(core, verb, request),
        },
    }
}

fn greeting(request: &Message) -> Message {
    let text = match (request.attr(attr::NAME), request.attr(ldmsd_req::attr_id("test").unwrap_or(0))) {
        (Some(name), _) => format!("Hello '{}'", name.str_value()),
        (None, Some(_)) => "Hi".to_string(),
        // ldmsd's record-splitting tests (offset=, level=) are not reproduced.
        (None, None) => String::new(),
    };
    Message::response_text(request.msg_no, 0, &text)
}

/// The name pvloom's parser gives attribute `id` of `verb`: ldmsd reads attributes by
/// id, and id 2 is `reconnect` to a producer and `flush` to a storage policy.
fn attr_name_for(verb: &str, id: u32) -> Option<&'static str> {
    match (verb, id) {
        ("prdcr_add" | "prdcr_start" | "prdcr_start_regex", attr::INTERVAL) => Some("reconnect"),
        ("strgp_add", attr::INTERVAL) => Some("flush"),
        _ => ldmsd_req::attr_name(id),
    }
}

/// The request as the configuration parser's verb and attributes. `config` and `env`
/// carry their `k=v ...` list in one STRING attribute, split as a file line is.
fn raw_command(verb: &str, request: &Message) -> Result<RawCommand, String> {
    let mut attrs = Vec::new();
    for a in &request.attrs {
        if a.id == attr::STRING && matches!(verb, "config" | "env") {
            let line = format!("{verb} {}", a.str_value());
            let split = lex::split(request.msg_no as usize, &line, &|k| std::env::var(k).ok());
            attrs.extend(split.map_err(|e| e.to_string())?.attrs);
            continue;
        }
        let name = attr_name_for(verb, a.id).ok_or_else(|| format!("unknown attribute id {}", a.id))?;
        let value = (!a.value.is_empty()).then(|| a.str_value());
        attrs.push(lex::Attr { name: name.to_string(), value });
    }
    Ok(RawCommand { line: request.msg_no as usize, verb: verb.to_string(), attrs })
}

/// A configuration request: parsed and carried out as the same line of a file would be.
fn configure(core: &Core, verb: &str, request: &Message) -> Message {
    let reply = |rsp_err: i32, text: &str| Message::response_text(request.msg_no, rsp_err as u32, text);
    let raw = match raw_command(verb, request) {
        Ok(r) => r,
        Err(e) => return reply(errno::EINVAL, &e),
    };
    let cmd = match command_from_raw(&raw) {
        Ok(Cmd::Listen { .. }) => {
            return reply(errno::ENOSYS, "pvloom ldmsd takes listen only from its configuration file");
        }
        Ok(c) => c,
        Err(ConfigErrorKind::UnknownVerb(v)) => {
            return reply(errno::ENOSYS, &format!("The request is not implemented by pvloom ldmsd: {v}"));
        }
        Err(ConfigErrorKind::Missing { verb, attr }) => {
            return reply(errno::EINVAL, &format!("The attribute '{attr}' is required by {verb}."));
        }
        Err(e) => return reply(errno::EINVAL, &e.to_string()),
    };
    match core.apply_cmd(&cmd) {
        Ok(()) => {
            core.changes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(verb, "configured by an LDMSD request");
            // ldmsd's msg_enable / msg_disable say OK; its other handlers say nothing.
            reply(0, if matches!(cmd, Cmd::MsgEnable | Cmd::MsgDisable) { "OK" } else { "" })
        }
        Err(r) => {
            let name = raw.attrs.iter().find(|a| a.name == "name").and_then(|a| a.value.clone()).unwrap_or_default();
            reply(r.errno, &ldmsd_text(verb, &name, &r))
        }
    }
}

/// ldmsd's text for the refusals its handlers word themselves; pvloom's otherwise.
fn ldmsd_text(verb: &str, name: &str, r: &Refusal) -> String {
    let object = verb.split('_').next().unwrap_or_default();
    match (object, verb, r.errno) {
        ("prdcr", "prdcr_add", errno::EEXIST) => format!("The prdcr {name} already exists."),
        ("prdcr", _, errno::ENOENT) => "The producer specified does not exist.".into(),
        ("updtr", "updtr_add", errno::EEXIST) => format!("The updtr {name} already exists."),
        ("updtr", _, errno::ENOENT) => "The updater specified does not exist.".into(),
        ("strgp", "strgp_add", errno::EEXIST) => format!("The strgp {name} already exists."),
        ("strgp", _, errno::ENOENT) => "The storage policy specified does not exist.".into(),
        (_, "start", errno::ENOENT) => format!("Sampler instance '{name}' not found."),
        (_, "term", errno::ENOENT) => format!("plugin instance '{name}' not found."),
        (_, "config", errno::ENOENT) => format!("The specified plugin instance '{name}' does not exist."),
        _ => r.msg.clone(),
    }
}

/// `reset=true` (any case), as ldmsd reads it.
fn wants_reset(request: &Message) -> bool {
    request.attr(attr::RESET).is_some_and(|a| a.str_value().eq_ignore_ascii_case("true"))
}

/// A counter as ldmsd prints one: `{bytes, count, first_ts, last_ts}`.
fn counter(bytes: u64, count: u64, first_ts: f64, last_ts: f64) -> Value {
    json!({"bytes": bytes, "count": count, "first_ts": first_ts, "last_ts": last_ts})
}

fn client_desc(c: &ClientStats) -> &'static str {
    if c.remote { "remote_client" } else { "local_client" }
}

/// A (channel, client) pair as ldmsd lists them. pvloom counts per client, not per
/// pair, so only a client subscribed to exactly this name has the pair's counters; its
/// drops are a count without bytes or times.
fn pair(channel: &str, c: &ClientStats) -> Value {
    json!({
        "msg_tag": channel,
        "client_match": c.pattern,
        "client_desc": client_desc(c),
        "is_regex": i32::from(c.is_regex),
        "drops": counter(0, c.drops, 0.0, 0.0),
        "tx": counter(c.tx.bytes, c.tx.count, c.tx.first_ts, c.tx.last_ts),
    })
}

fn json_reply(msg_no: u32, v: &Value) -> Message {
    Message::response_json(msg_no, &v.to_string())
}

/// `msg_stats [regex=] [stream=] [message_tag=] [reset=]`: ldmsd's array of channels
/// `{msg_tag, rx, sources, clients}`. (ldmsd reads only regex and stream; pvloom takes
/// message_tag as an exact name too.)
fn msg_stats(core: &Core, request: &Message) -> Message {
    let msg_no = request.msg_no;
    if !core.bus.is_enabled() {
        return Message::response_text(msg_no, errno::ENOTSUP as u32, "The message service is disabled.");
    }
    let exact = request.attr(attr::STREAM).or_else(|| request.attr(ldmsd_req::attr_id("message_tag").unwrap_or(0)));
    let regex = match request.attr(attr::REGEX).map(|a| regex::Regex::new(&a.str_value())).transpose() {
        Ok(r) => r,
        Err(_) => {
            let text = format!("ldms_msg_stats_str() error: {}", errno::EINVAL);
            return Message::response_text(msg_no, errno::EINVAL as u32, &text);
        }
    };
    let stats = core.bus.stats();
    let channels: Vec<Value> = stats
        .channels
        .iter()
        .filter(|ch| match (&regex, exact) {
            (Some(re), _) => re.is_match(&ch.name),
            (None, Some(name)) => ch.name == name.str_value(),
            (None, None) => true,
        })
        .map(|ch| {
            let sources: serde_json::Map<String, Value> = ch
                .sources
                .iter()
                .map(|(src, c)| (src.clone(), counter(c.bytes, c.count, c.first_ts, c.last_ts)))
                .collect();
            let clients: Vec<Value> = stats
                .clients
                .iter()
                .filter(|c| !c.is_regex && c.pattern == ch.name)
                .map(|c| pair(&ch.name, c))
                .collect();
            json!({
                "msg_tag": ch.name,
                "rx": counter(ch.rx.bytes, ch.rx.count, ch.rx.first_ts, ch.rx.last_ts),
                "sources": sources,
                "clients": clients,
            })
        })
        .collect();
    if wants_reset(request) {
        core.bus.reset_stats();
    }
    json_reply(msg_no, &Value::Array(channels))
}

/// `msg_client_stats [reset=]`: ldmsd's array of clients `{match, desc, dest, tx,
/// drops, channels}`. `dest` is `local` or pvloom's `link N` of the connection.
fn msg_client_stats(core: &Core, request: &Message) -> Message {
    let msg_no = request.msg_no;
    if !core.bus.is_enabled() {
        return Message::response_text(msg_no, errno::ENOTSUP as u32, "The LDMS message service is disabled.");
    }
    let stats = core.bus.stats();
    let clients: Vec<Value> = stats
        .clients
        .iter()
        .map(|c| {
            let channels: Vec<Value> = if c.is_regex {
                Vec::new()
            } else {
                stats.channels.iter().filter(|ch| ch.name == c.pattern).map(|ch| pair(&ch.name, c)).collect()
            };
            json!({
                "match": c.pattern,
                "desc": client_desc(c),
                "dest": c.link.map_or_else(|| "local".to_string(), |l| format!("link {l}")),
                "tx": counter(c.tx.bytes, c.tx.count, c.tx.first_ts, c.tx.last_ts),
                "drops": counter(0, c.drops, 0.0, 0.0),
                "channels": channels,
            })
        })
        .collect();
    if wants_reset(request) {
        core.bus.reset_stats();
    }
    json_reply(msg_no, &Value::Array(clients))
}

/// `prdcr_status [name=]`: ldmsd's array of producers with their sets. pvloom's
/// producers are active, sock, default auth, one rail, no quota or rate limit.
fn prdcr_status(core: &Core, request: &Message) -> Message {
    let msg_no = request.msg_no;
    let wanted = request.attr(attr::NAME).map(Attr::str_value);
    let producers: Vec<Value> = core
        .aggregator
        .status()
        .into_iter()
        .filter(|p| wanted.as_ref().is_none_or(|w| *w == p.name))
        .map(|p| {
            let state = match p.state {
                ProducerState::Stopped => "STOPPED",
                ProducerState::Connecting => "CONNECTING",
                ProducerState::Connected => "CONNECTED",
            };
            let sets: Vec<Value> = p
                .sets
                .iter()
                .zip(&p.set_schemas)
                .map(|(inst, schema)| json!({"inst_name": inst, "schema_name": schema, "state": "READY"}))
                .collect();
            json!({
                "name": p.name, "type": "active", "host": p.host, "port": p.port, "transport": "sock",
                "auth": "DEFAULT", "rail": "1", "quota": "-1", "rx_rate": "-1",
                "reconnect_us": p.reconnect_us.to_string(), "state": state, "sets": sets,
            })
        })
        .collect();
    if let Some(name) = wanted.filter(|_| producers.is_empty()) {
        return Message::response_text(msg_no, errno::ENOENT as u32, &format!("prdcr '{name}' not found"));
    }
    json_reply(msg_no, &Value::Array(producers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(verb: &str, attrs: Vec<Attr>) -> Vec<(String, Option<String>)> {
        let m = Message::request(1, ldmsd_req::request_id(verb).unwrap(), attrs);
        raw_command(verb, &m).unwrap().attrs.into_iter().map(|a| (a.name, a.value)).collect()
    }

    #[test]
    fn attribute_ids_become_the_names_the_parser_takes() {
        let s = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
        let interval = |v: &str| Attr::string(attr::INTERVAL, v);
        assert_eq!(
            names("prdcr_start", vec![Attr::string(attr::NAME, "p"), interval("1s")]),
            [s("name", "p"), s("reconnect", "1s")]
        );
        assert_eq!(names("strgp_add", vec![interval("1s")]), [s("flush", "1s")]);
        assert_eq!(names("updtr_add", vec![interval("1s")]), [s("interval", "1s")]);
        // config's k=v list arrives as one STRING attribute.
        let config = names(
            "config",
            vec![Attr::string(attr::NAME, "m"), Attr::string(attr::STRING, "producer=a instance=a/m force_integer")],
        );
        assert_eq!(config, [s("name", "m"), s("producer", "a"), s("instance", "a/m"), ("force_integer".into(), None)]);
        let m = Message::request(1, 0x100, vec![Attr::string(999, "x")]);
        assert_eq!(raw_command("prdcr_add", &m).unwrap_err(), "unknown attribute id 999");
    }

    #[test]
    fn refusals_are_worded_as_ldmsd_words_them() {
        let r = |errno| Refusal::new(errno, "pvloom's own words");
        assert_eq!(ldmsd_text("prdcr_add", "p1", &r(errno::EEXIST)), "The prdcr p1 already exists.");
        assert_eq!(ldmsd_text("prdcr_del", "p1", &r(errno::ENOENT)), "The producer specified does not exist.");
        assert_eq!(ldmsd_text("updtr_start", "u", &r(errno::ENOENT)), "The updater specified does not exist.");
        assert_eq!(ldmsd_text("start", "s", &r(errno::ENOENT)), "Sampler instance 's' not found.");
        assert_eq!(ldmsd_text("load", "x", &r(errno::ENOENT)), "pvloom's own words");
    }
}
