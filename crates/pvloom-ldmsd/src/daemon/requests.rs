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
use pvloom_ldms::bus::{ClientStats, PairStats};
use pvloom_ldms::ldmsd_req::{
    self, Attr, Message, RECORD_MARKER, Reassembler, ReassemblyError, ReassemblyLimits, Record, RecordHeader,
    TYPE_REQUEST, TYPE_RESPONSE, attr, req,
};
use pvloom_ldms::server::{Peer, SEND_MSG_MAX};
use serde_json::{Value, json};

use super::aggregator::ProducerState;
use super::{Core, Refusal, errno};
use crate::config::{Cmd, ConfigErrorKind, Push, RawCommand, command_from_raw, lex};

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
        req::PRDCR_SET_STATUS => prdcr_set_status(core, request),
        req::UPDTR_STATUS => updtr_status(core, request),
        req::STRGP_STATUS => strgp_status(core, request),
        req::PLUGN_STATUS => plugn_status(core, request),
        req::PLUGN_SETS => plugn_sets(core, request),
        req::DAEMON_STATUS => daemon_status(core, request),
        req::THREAD_STATS => json_reply(msg_no, &thread_stats(core)),
        req::PRDCR_STATS => prdcr_stats(core, request),
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

/// A counter as ldmsd prints one: `{bytes, count, first_ts, last_ts}`. ldmsd starts
/// (and resets) `first_ts` at the largest time, so that the first message's is below
/// it; an empty counter shows that (its clients print both it and 0 as empty).
fn counter(bytes: u64, count: u64, first_ts: f64, last_ts: f64) -> Value {
    let first_ts = if count == 0 { i64::MAX as f64 } else { first_ts };
    json!({"bytes": bytes, "count": count, "first_ts": first_ts, "last_ts": last_ts})
}

/// The subscriber's address as ldmsd prints one (`ldms_addr_ntop`): `0.0.0.0:0` for a
/// local client.
fn dest(c: &ClientStats) -> String {
    match c.peer {
        Some(std::net::SocketAddr::V4(a)) => format!("{}:{}", a.ip(), a.port()),
        Some(std::net::SocketAddr::V6(a)) => format!("[{}]:{}", a.ip(), a.port()),
        None => "0.0.0.0:0".to_string(),
    }
}

fn client_desc(c: &ClientStats) -> &'static str {
    if c.remote { "remote_client" } else { "local_client" }
}

/// A (channel, client) pair as ldmsd lists them, under the channel (`msg_stats`) and
/// under the client (`msg_client_stats`).
fn pair(c: &ClientStats, p: &PairStats) -> Value {
    json!({
        "msg_tag": p.channel,
        "client_match": c.pattern,
        "client_desc": client_desc(c),
        "is_regex": i32::from(c.is_regex),
        "drops": counter(p.drops.bytes, p.drops.count, p.drops.first_ts, p.drops.last_ts),
        "tx": counter(p.tx.bytes, p.tx.count, p.tx.first_ts, p.tx.last_ts),
    })
}

fn json_reply(msg_no: u32, v: &Value) -> Message {
    Message::response_json(msg_no, &v.to_string())
}

/// ldmsd's `LDMS_MSG_STATS_LEVEL` (1 unless set, read as `atoi` does): it counts
/// messages per source only above 1, so its `sources` are empty by default.
fn msg_stats_level() -> i64 {
    let Ok(v) = std::env::var("LDMS_MSG_STATS_LEVEL") else { return 1 };
    let v = v.trim_start();
    let end = v
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
        .map_or(v.len(), |(i, _)| i);
    v[..end].parse().unwrap_or(0)
}

/// `msg_stats [regex=] [stream=] [message_tag=] [reset=]`: ldmsd's array of channels
/// `{msg_tag, rx, sources, clients}`, `sources` as `LDMS_MSG_STATS_LEVEL` asks.
/// (ldmsd reads only regex and stream; pvloom takes message_tag as an exact name too.)
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
    let by_source = msg_stats_level() > 1;
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
                .filter(|_| by_source)
                .map(|(src, c)| (src.clone(), counter(c.bytes, c.count, c.first_ts, c.last_ts)))
                .collect();
            let clients: Vec<Value> = stats
                .clients
                .iter()
                .filter_map(|c| c.channels.iter().find(|p| p.channel == ch.name).map(|p| pair(c, p)))
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
/// drops, channels}`, regex clients first (in the order they subscribed), then the
/// exact ones by channel name; `channels` holds each (channel, client) pair's own
/// counters.
fn msg_client_stats(core: &Core, request: &Message) -> Message {
    let msg_no = request.msg_no;
    if !core.bus.is_enabled() {
        return Message::response_text(msg_no, errno::ENOTSUP as u32, "The LDMS message service is disabled.");
    }
    let mut stats = core.bus.stats().clients;
    // Stable: clients of one channel keep their subscription order.
    stats.sort_by(|a, b| match (a.is_regex, b.is_regex) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.pattern.cmp(&b.pattern),
    });
    let clients: Vec<Value> = stats
        .iter()
        .map(|c| {
            let channels: Vec<Value> = c.channels.iter().map(|p| pair(c, p)).collect();
            let d = &c.dropped;
            json!({
                "match": c.pattern,
                "desc": client_desc(c),
                "dest": dest(c),
                "tx": counter(c.tx.bytes, c.tx.count, c.tx.first_ts, c.tx.last_ts),
                "drops": counter(d.bytes, d.count, d.first_ts, d.last_ts),
                "channels": channels,
            })
        })
        .collect();
    if wants_reset(request) {
        core.bus.reset_client_stats();
    }
    json_reply(msg_no, &Value::Array(clients))
}

/// A JSON response whose attribute ends at the closing bracket: ldmsd's status
/// handlers count the JSON's length without a NUL (its `msg_*` handlers add one).
fn json_reply_bare(msg_no: u32, v: &Value) -> Message {
    let attrs = vec![Attr { id: attr::JSON, value: v.to_string().into_bytes() }];
    Message { kind: TYPE_RESPONSE, msg_no, code: 0, attrs }
}

fn producer_state(s: ProducerState) -> &'static str {
    match s {
        ProducerState::Stopped => "STOPPED",
        ProducerState::Connecting => "CONNECTING",
        ProducerState::Connected => "CONNECTED",
    }
}

/// ldmsd's "true"/"false" strings (its status JSON quotes booleans).
fn yes_no(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// `updtr_status [name=] [summary] [reset=]`: ldmsd's array of updaters with the
/// producers they update. ldmsd reads `summary` (and `reset`) but reports the same
/// either way; the client leaves the producers out of its table for `summary`.
fn updtr_status(core: &Core, request: &Message) -> Message {
    let msg_no = request.msg_no;
    let wanted = request.attr(attr::NAME).map(Attr::str_value);
    let all = core.aggregator.updaters();
    if let Some(name) = &wanted
        && !all.iter().any(|u| u.name == *name)
    {
        return Message::response_text(msg_no, errno::ENOENT as u32, &format!("updtr '{name}' doesn't exist."));
    }
    let updaters: Vec<Value> = all
        .into_iter()
        .filter(|u| wanted.as_ref().is_none_or(|w| *w == u.name))
        .map(|u| {
            let mode = match u.push {
                Push::Off => "Pull",
                Push::OnChange => "Push on Change",
                Push::Always => "Push on Request",
            };
            let producers: Vec<Value> = u
                .producers
                .iter()
                .map(|(name, host, port, state)| {
                    json!({"name": name, "host": host, "port": port, "transport": "sock", "state": producer_state(*state)})
                })
                .collect();
            json!({
                "name": u.name,
                "interval": u.interval_us.to_string(),
                "offset": u.offset_us.unwrap_or(0).to_string(),
                "sync": yes_no(u.offset_us.is_some()),
                "mode": mode,
                "auto": yes_no(u.auto),
                "state": if u.running { "RUNNING" } else { "STOPPED" },
                "producers": producers,
            })
        })
        .collect();
    json_reply_bare(msg_no, &Value::Array(updaters))
}

/// `strgp_status [name=]`: ldmsd's array of storage policies. `plugin` is the store's
/// plugin (library) name, not the instance the policy names; pvloom has no
/// decomposition (`decomp` "-").
fn strgp_status(core: &Core, request: &Message) -> Message {
    let msg_no = request.msg_no;
    let wanted = request.attr(attr::NAME).map(Attr::str_value);
    let all = core.aggregator.strgps();
    if let Some(name) = &wanted
        && !all.iter().any(|s| s.name == *name)
    {
        return Message::response_text(msg_no, errno::ENOENT as u32, &format!("strgp '{name}' doesn't exist."));
    }
    let policies: Vec<Value> = all
        .into_iter()
        .filter(|s| wanted.as_ref().is_none_or(|w| *w == s.name))
        .map(|s| {
            let plugin = if core.is_store(&s.plugin) { "store_csv".to_string() } else { s.plugin };
            json!({
                "name": s.name,
                "container": s.container,
                "schema": s.schema.as_deref().unwrap_or("-"),
                "regex": s.regex.as_deref().unwrap_or("-"),
                "plugin": plugin,
                "flush": format!("{}.{:06}", s.flush_us / 1_000_000, s.flush_us % 1_000_000),
                "state": if s.running { "RUNNING" } else { "STOPPED" },
                "decomp": "-",
                "producers": s.producers,
                "metrics": s.metrics,
            })
        })
        .collect();
    json_reply_bare(msg_no, &Value::Array(policies))
}

/// ldmsd's `type` of a plugin: `sampler[M]` for one that may be loaded more than once
/// (under several names), `[S]` otherwise, as the C plugins declare themselves.
fn plugin_type(kind: &str, plugin: &str) -> String {
    let multi = matches!(plugin, "meminfo" | "procnetdev2" | "test_sampler" | "store_csv");
    format!("{kind}[{}]", if multi { "M" } else { "S" })
}

/// Where a plugin's code is: ldmsd names the `.so` it loaded; pvloom's plugins are
/// built into its executable.
fn libpath() -> String {
    std::env::current_exe().map_or_else(|_| "pvloom".to_string(), |p| p.display().to_string())
}

/// `plugn_status`: ldmsd's array of plugin instances, samplers first, then stores.
/// (ldmsd_controller sends `name`; ldmsd ignores it.)
fn plugn_status(core: &Core, request: &Message) -> Message {
    let lib = libpath();
    let mut plugins: Vec<Value> = core.samplers.with(|p| {
        p.iter()
            .map(|(name, s)| {
                json!({"name": name, "plugin": s.plugin, "type": plugin_type("sampler", &s.plugin), "libpath": lib})
            })
            .collect()
    });
    plugins.extend(core.store_names().into_iter().map(
        |name| json!({"name": name, "plugin": "store_csv", "type": plugin_type("store", "store_csv"), "libpath": lib}),
    ));
    json_reply_bare(request.msg_no, &Value::Array(plugins))
}

/// `plugn_sets [name=]`: the sets of each sampler instance (of `name` only: none when it
/// is not a loaded sampler).
fn plugn_sets(core: &Core, request: &Message) -> Message {
    let wanted = request.attr(attr::NAME).map(Attr::str_value);
    let sets: Vec<Value> = core.samplers.with(|p| {
        p.iter()
            .filter(|(name, _)| wanted.as_ref().is_none_or(|w| *w == **name))
            .map(|(name, s)| {
                let sets: Vec<&str> = s.sets.iter().map(|h| h.name()).collect();
                json!({"plugin": name, "sets": sets})
            })
            .collect()
    });
    json_reply_bare(request.msg_no, &Value::Array(sets))
}

/// `prdcr_set_status [producer=] [instance=] [schema=]`: the sets pulled from the
/// producers. ldmsd reads the producer from attribute `producer` (ldmsd_controller
/// sends `name`, which it ignores); an unknown producer is an empty list. Every set
/// pvloom lists has been looked up (ldmsd's READY).
fn prdcr_set_status(core: &Core, request: &Message) -> Message {
    let get = |id| request.attr(id).map(Attr::str_value);
    let (producer, instance, schema) = (get(attr::PRODUCER), get(attr::INSTANCE), get(attr::SCHEMA));
    let sets: Vec<Value> = core
        .aggregator
        .producer_sets()
        .into_iter()
        .filter(|s| producer.as_ref().is_none_or(|p| *p == s.producer))
        .filter(|s| instance.as_ref().is_none_or(|i| *i == s.inst))
        .filter(|s| schema.as_ref().is_none_or(|c| *c == s.schema))
        .map(|s| {
            json!({
                "inst_name": s.inst, "schema_name": s.schema, "state": "READY", "origin": s.origin,
                "producer": s.producer,
                "timestamp.sec": s.timestamp.0.to_string(), "timestamp.usec": s.timestamp.1.to_string(),
                "duration.sec": s.duration.0.to_string(), "duration.usec": s.duration.1.to_string(),
            })
        })
        .collect();
    json_reply_bare(request.msg_no, &Value::Array(sets))
}

/// `daemon_status [thread_stats]`: `{"state":"ready"}` (a daemon answering requests
/// has finished its start), with `thread_stats` when the request carries a STRING
/// attribute.
fn daemon_status(core: &Core, request: &Message) -> Message {
    let mut v = json!({"state": "ready"});
    if request.attr(attr::STRING).is_some() {
        v["thread_stats"] = thread_stats(core);
    }
    json_reply_bare(request.msg_no, &v)
}

/// The operations ldmsd splits an I/O thread's busy time into (`ldms_xprt`), in its
/// order. pvloom does not split it: all of it is "Other".
const XPRT_OPS: &[&str] = &[
    "Other",
    "Connecting",
    "Dir Requests",
    "Dir Replies",
    "Lookup Requests",
    "Lookup Replies",
    "Update Requests",
    "Update Completes",
    "Message Service Data",
    "Message Service Client",
    "Push Requests",
    "Push Replies",
    "Set Delete Requests",
    "Set Delete Replies",
    "Send Messages",
    "Receive Messages",
    "Authentication",
    "Disconnecting",
];

/// ldmsd's thread statistics (`thread_stats`, `daemon_status thread_stats`): the
/// runtime's I/O threads as its io_threads, their busy share over pvloom's one-second
/// window. pvloom has no Linux tid or pthread id of them at hand (0 and `(nil)`, as
/// ldmsd prints a null id), no worker, exclusive or storage threads in ldmsd's sense,
/// and does not count the time a daemon spends working out the answer.
fn thread_stats(core: &Core) -> Value {
    let window_us: i64 = 1_000_000;
    let alive_us = i64::try_from(core.started.elapsed().as_micros()).unwrap_or(i64::MAX);
    let io: Vec<Value> = core
        .runtime
        .thread_stats()
        .iter()
        .map(|t| {
            let active_tot = i64::try_from(t.busy_total.as_micros()).unwrap_or(i64::MAX).min(alive_us);
            let idle_tot = alive_us - active_tot;
            let active_us = (t.busy_fraction * window_us as f64) as i64;
            let mut ops = serde_json::Map::new();
            ops.insert("Idle".into(), idle_tot.into());
            ops.insert("Zap".into(), 0.into());
            for (i, op) in XPRT_OPS.iter().enumerate() {
                ops.insert((*op).into(), if i == 0 { active_tot } else { 0 }.into());
            }
            json!({
                "name": t.name, "tid": 0, "thread_id": "(nil)",
                "idle_tot": idle_tot, "active_tot": active_tot, "total_us": alive_us,
                "idle_us": window_us - active_us, "active_us": active_us, "refresh_us": window_us,
                "utilization": t.busy_fraction, "sq_sz": 0, "n_eps": t.handlers, "ldms_xprt": ops,
            })
        })
        .collect();
    json!({
        "count": io.len(),
        "io_threads": io,
        "worker_threads": [],
        "xthreads": [],
        "storage threads": [],
        "compute_time": 0,
    })
}

/// `prdcr_stats`: producers per connection state and the sets pulled from them, keys
/// in ldmsd's order (ldmsd_controller prints them in the order they come). pvloom has
/// no DISCONNECTED (waiting to reconnect is CONNECTING), STOPPING or STANDBY state.
fn prdcr_stats(core: &Core, request: &Message) -> Message {
    let producers = core.aggregator.status();
    let count = |s: ProducerState| producers.iter().filter(|p| p.state == s).count();
    let fields = [
        ("prdcr_count", producers.len()),
        ("stopped_count", count(ProducerState::Stopped)),
        ("disconnected_count", 0),
        ("connecting_count", count(ProducerState::Connecting)),
        ("connected_count", count(ProducerState::Connected)),
        ("stopping_count", 0),
        ("standby_count", 0),
        ("set_count", producers.iter().map(|p| p.sets.len()).sum::<usize>()),
        ("compute_time", 0),
    ];
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    // With its NUL, as ldmsd's *_stats handlers send their JSON.
    Message::response_json(request.msg_no, &format!("{{{}}}", body.join(",")))
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
            let state = producer_state(p.state);
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
    json_reply_bare(msg_no, &Value::Array(producers))
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
