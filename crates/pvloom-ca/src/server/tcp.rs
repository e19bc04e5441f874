//! The TCP side of the server: accepting clients, and the application layer of each
//! client's circuit above its sans-I/O [`ServerEndpoint`], run by pvloom-core's stream
//! driver (which owns the socket, the buffers, back-pressure and the stall timeout).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use pvloom_core::IoCtx;
use pvloom_core::driver::{self, StreamAddress, StreamApp, StreamConfig};
use pvloom_core::endpoint::CloseReason;
use pvloom_core::mio::net::TcpStream;

use super::ServerShared;
use super::endpoint::{ServedChannel, ServerEndpoint};
use super::outbox::Outbox;
use super::registry::{ServedPv, ServerSubscription};
use crate::proto::command::{AccessRights, Command, code};
use crate::proto::constants::{DBE_ALARM, DBE_VALUE, ECA_BADCOUNT, ECA_NORDACCESS, ECA_NORMAL, ECA_NOWTACCESS};
use crate::proto::{CircuitConfig, DbrData, DbrType, DecoderConfig, Header};

/// Hand an accepted client to the least-loaded I/O thread and open its circuit there.
pub(crate) fn accept(stream: TcpStream, peer: SocketAddr, shared: &Arc<ServerShared>, ctx: &mut IoCtx<'_>) {
    let Some(runtime) = ctx.runtime() else { return };
    if shared.clients() >= shared.config.max_clients {
        tracing::warn!(%peer, "client refused: {} clients already", shared.config.max_clients);
        return;
    }
    let address = StreamAddress::new(runtime.clone(), runtime.least_loaded_thread());
    let shared = shared.clone();
    let thread = address.thread();
    let _ = runtime.run_on(thread, move |ctx| ServerCircuit::open(ctx, stream, peer, address, shared));
}

/// One client's virtual circuit. Its channels and subscriptions are in its
/// endpoint's book.
pub(crate) struct ServerCircuit {
    peer: SocketAddr,
    shared: Arc<ServerShared>,
    endpoint: ServerEndpoint,
    outbox: Arc<Outbox>,
    next_sid: u32,
    host: String,
    user: String,
    failed_creates: u32,
}

impl ServerCircuit {
    fn open(
        ctx: &mut IoCtx<'_>,
        stream: TcpStream,
        peer: SocketAddr,
        address: Arc<StreamAddress<ServerCircuit>>,
        shared: Arc<ServerShared>,
    ) {
        let decoder = DecoderConfig {
            max_payload: u32::try_from(shared.config.max_array_bytes).unwrap_or(u32::MAX),
            ..DecoderConfig::default()
        };
        let waker = address.clone();
        let outbox = Arc::new(Outbox::new(Box::new(move || {
            // The driver pumps the circuit after the call: the updates go out.
            waker.exec(|_, _| {}, || {});
        })));
        let config = CircuitConfig { decoder, version: shared.config.protocol_version };
        let circuit = ServerCircuit {
            peer,
            endpoint: ServerEndpoint::new(config, outbox.clone()),
            outbox,
            shared: shared.clone(),
            next_sid: 1,
            host: peer.ip().to_string(),
            user: String::new(),
            failed_creates: 0,
        };
        let stream_config = StreamConfig {
            stall_timeout: Some(shared.config.send_stall_timeout),
            send_buffer: 256 * 1024,
            ..StreamConfig::default()
        };
        match driver::adopt(ctx, &address, stream, stream_config, circuit) {
            Ok(()) => {
                shared.client_opened();
                tracing::debug!(%peer, "client connected");
            }
            Err(e) => tracing::warn!("cannot register a client circuit: {e}"),
        }
    }

    fn queue(&mut self, commands: &[Command]) {
        for command in commands {
            if let Some(err) = self.queue_checked(command) {
                tracing::debug!(peer = %self.peer, command = command.name(), "reply refused: {err}");
            }
        }
    }

    /// Queue one reply; the circuit's rules may refuse it (the error is returned).
    fn queue_checked(&mut self, command: &Command) -> Option<crate::proto::CircuitError> {
        self.endpoint.reply(command).err()
    }

    fn rights_for(&self, pv: &ServedPv) -> AccessRights {
        let group = pv.backend.access_group();
        let rules = self.shared.access.rights_in_group(&pv.name, group.as_deref(), &self.host, &self.user);
        if pv.backend.writable() { rules } else { AccessRights(rules.0 & crate::proto::constants::ACCESS_RIGHT_READ) }
    }

    fn error(&mut self, cid: u32, status: u32, request: Header, message: &str) {
        self.queue(&[Command::ErrorResponse { cid, status, original_request: request, message: message.to_owned() }]);
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::VersionRequest { .. } | Command::ReadSyncRequest => {}
            Command::HostNameRequest { name } => {
                self.host = name;
                self.refresh_rights();
            }
            Command::ClientNameRequest { name } => {
                self.user = name;
                self.refresh_rights();
            }
            Command::CreateChanRequest { cid, name, .. } => self.create_channel(cid, &name),
            Command::SearchRequest { name, search_id, do_reply, version } => {
                if self.shared.registry.contains(&name) {
                    let port = self.shared.tcp_port;
                    self.queue(&[Command::SearchResponse { port, server_address: None, search_id, version: None }]);
                } else if do_reply {
                    // A name server's client asked to be told (rsrv's search_reply_tcp).
                    self.queue(&[Command::NotFoundResponse { do_reply, version, search_id }]);
                }
            }
            Command::ReadNotifyRequest { data_type, data_count, sid, ioid } => {
                let header = Header {
                    command: code::READ_NOTIFY,
                    payload_size: 0,
                    data_type: data_type.code(),
                    data_count,
                    param1: sid,
                    param2: ioid,
                };
                let Some((_, channel)) = self.endpoint.book().channel_payload_by_sid(sid) else { return };
                let (rights, pv) = (channel.rights, channel.pv.clone());
                let _ = header;
                // Failures are READ_NOTIFY replies carrying the status and a zeroed value,
                // as rsrv sends them (clients match them to the pending read).
                let failed = |status: u32| {
                    let count = zeroed_count(data_count, pv.backend.element_count());
                    Command::ReadNotifyResponse {
                        data_type,
                        data_count: count,
                        status,
                        ioid,
                        data: zeroed(data_type, count),
                    }
                };
                let reply = if !rights.can_read() {
                    failed(ECA_NORDACCESS)
                } else {
                    match pv.backend.read(data_type, data_count) {
                        Ok(data) => Command::read_notify_response(ioid, ECA_NORMAL, data_type, &data)
                            .unwrap_or_else(|_| failed(ECA_BADCOUNT)),
                        Err(status) => failed(status),
                    }
                };
                if let Some(err) = self.queue_checked(&reply) {
                    tracing::debug!("read reply refused ({err}); answering with ECA_BADCOUNT");
                    let fallback = failed(ECA_BADCOUNT);
                    self.queue(&[fallback]);
                }
            }
            Command::ReadRequest { data_type, data_count, sid, ioid } => {
                let Some((info, channel)) = self.endpoint.book().channel_payload_by_sid(sid) else { return };
                let (cid, rights, pv) = (info.cid, channel.rights, channel.pv.clone());
                let header = Header {
                    command: code::READ,
                    payload_size: 0,
                    data_type: data_type.code(),
                    data_count,
                    param1: sid,
                    param2: ioid,
                };
                if !rights.can_read() {
                    self.error(cid, ECA_NORDACCESS, header, "no read access");
                    return;
                }
                let reply = pv.backend.read(data_type, data_count).ok().and_then(|data| {
                    let (count, bytes) = (data.count().ok()?, data.encode(data_type).ok()?);
                    Some(Command::ReadResponse { data_type, data_count: count, cid, ioid, data: bytes })
                });
                match reply {
                    Some(reply) if self.queue_checked(&reply).is_none() => {}
                    _ => self.error(cid, crate::proto::constants::ECA_GETFAIL, header, "read failed"),
                }
            }
            Command::WriteRequest { data_type, data_count, sid, ioid, data } => {
                self.write(data_type, data_count, sid, ioid, &data, false);
            }
            Command::WriteNotifyRequest { data_type, data_count, sid, ioid, data } => {
                self.write(data_type, data_count, sid, ioid, &data, true);
            }
            Command::EventAddRequest { data_type, data_count, sid, subscription_id, mask, .. } => {
                let Some((_, channel)) = self.endpoint.book().channel_payload_by_sid(sid) else { return };
                let (rights, pv) = (channel.rights, channel.pv.clone());
                if !rights.can_read() {
                    // As rsrv: one update carrying ECA_NORDACCESS and no value.
                    let count = zeroed_count(data_count, pv.backend.element_count());
                    self.queue(&[Command::EventAddResponse {
                        data_type,
                        data_count: count,
                        status: ECA_NORDACCESS,
                        subscription_id,
                        data: zeroed(data_type, count),
                    }]);
                    return;
                }
                // 0 asks for dynamic size: each update carries the elements there are now
                // (a waveform's NORD), as rsrv's read_reply does; it is not NELM.
                let count = data_count;
                let mask = if mask == 0 { DBE_VALUE | DBE_ALARM } else { mask };
                let subscription = Arc::new(ServerSubscription {
                    id: subscription_id,
                    data_type,
                    count,
                    mask,
                    outbox: self.outbox.clone(),
                    gate: pv.backend.monitor_gate().map(Mutex::new),
                    first: Mutex::default(),
                });
                self.outbox.register(subscription_id);
                pv.subscribe(&subscription);
                subscription.send_current(&pv.backend);
                // The EVENT_ADD was accepted: the book has the subscription.
                let _ = self.endpoint.book_mut().attach_subscription(subscription_id, subscription);
            }
            Command::EventCancelRequest { data_type, data_count, sid, subscription_id } => {
                self.endpoint.book_mut().take_subscription_payload(subscription_id);
                self.outbox.forget(subscription_id);
                self.queue(&[Command::EventCancelResponse { data_type, data_count, sid, subscription_id }]);
            }
            Command::EventsOffRequest => self.outbox.set_events(false),
            Command::EventsOnRequest => self.outbox.set_events(true),
            Command::ClearChannelRequest { sid, cid } => {
                // The book checked that `sid` is `cid`'s; the reply forgets the channel.
                let book = self.endpoint.book_mut();
                book.take_channel_payload(cid);
                for (id, _) in book.take_subscription_payloads_of(cid) {
                    self.outbox.forget(id);
                }
                self.queue(&[Command::ClearChannelResponse { sid, cid }]);
            }
            Command::EchoRequest => self.queue(&[Command::EchoResponse]),
            other => tracing::debug!(command = other.name(), "ignored from a client"),
        }
    }

    fn create_channel(&mut self, cid: u32, name: &str) {
        let Some(pv) = self.shared.registry.get(name) else {
            self.failed_creates += 1;
            if self.failed_creates > self.shared.config.max_failed_creates {
                let why = format!("{} channel creates for names this server lacks", self.failed_creates);
                return self.endpoint.close(CloseReason::Protocol(why));
            }
            self.queue(&[Command::CreateChFailResponse { cid }]);
            return;
        };
        // The book holds the channels served, and this one being created.
        if self.endpoint.book().channel_count().saturating_sub(1) >= self.shared.config.max_channels_per_client {
            let why = format!("more than {} channels", self.shared.config.max_channels_per_client);
            return self.endpoint.close(CloseReason::Protocol(why));
        }
        let sid = self.next_sid;
        self.next_sid = self.next_sid.wrapping_add(1).max(1);
        let rights = self.rights_for(&pv);
        let (native, count) = (pv.backend.native_type(), pv.backend.element_count());
        self.queue(&[
            Command::AccessRightsResponse { cid, access_rights: rights },
            Command::CreateChanResponse { data_type: native, data_count: count, cid, sid },
        ]);
        // The CREATE_CHAN was accepted when it arrived: the book has the channel.
        let _ = self.endpoint.book_mut().attach_channel(cid, ServedChannel { pv, rights });
    }

    fn refresh_rights(&mut self) {
        let changes: Vec<(u32, AccessRights)> = self
            .endpoint
            .book()
            .channel_payloads()
            .map(|(info, c)| (info.cid, c.rights, self.rights_for(&c.pv)))
            .filter(|(_, old, new)| old != new)
            .map(|(cid, _, rights)| (cid, rights))
            .collect();
        for (cid, rights) in changes {
            if let Some(channel) = self.endpoint.book_mut().channel_payload_mut(cid) {
                channel.rights = rights;
            }
            self.queue(&[Command::AccessRightsResponse { cid, access_rights: rights }]);
        }
    }

    fn write(&mut self, data_type: DbrType, data_count: u32, sid: u32, ioid: u32, payload: &[u8], notify: bool) {
        let header = Header {
            command: if notify { code::WRITE_NOTIFY } else { code::WRITE },
            payload_size: 0,
            data_type: data_type.code(),
            data_count,
            param1: sid,
            param2: ioid,
        };
        let Some((info, channel)) = self.endpoint.book().channel_payload_by_sid(sid) else { return };
        let (cid, rights, pv) = (info.cid, channel.rights, channel.pv.clone());
        let mut pending = None;
        let status = if !rights.can_write() {
            ECA_NOWTACCESS
        } else {
            match DbrData::decode(data_type, data_count, payload) {
                Ok(data) => {
                    let written = if notify {
                        pv.backend.write_notify(data_type, &data)
                    } else {
                        pv.backend.write(data_type, &data).map(|events| (events, None))
                    };
                    match written {
                        Ok((events, later)) => {
                            pv.post(events);
                            pending = later;
                            ECA_NORMAL
                        }
                        Err(status) => status,
                    }
                }
                Err(_) => crate::proto::constants::ECA_BADTYPE,
            }
        };
        // The client's own subscription updates caused by this write go out before the
        // write's confirmation, so a client that reads its monitor cache right after a
        // completed put sees the new value (what clients of rsrv observe).
        self.endpoint.take_updates();
        if let Some(pending) = pending {
            // As rsrv with dbPutNotify: answered when the processing the put started ends.
            let outbox = self.outbox.clone();
            pending.then(move |done| {
                let status = done.unwrap_or(crate::proto::constants::ECA_PUTFAIL);
                outbox.push_reply(Command::WriteNotifyResponse { data_type, data_count, status, ioid });
            });
        } else if notify {
            self.queue(&[Command::WriteNotifyResponse { data_type, data_count, status, ioid }]);
        } else if status != ECA_NORMAL {
            self.error(cid, status, header, "write failed");
        }
    }
}

impl StreamApp for ServerCircuit {
    type Endpoint = ServerEndpoint;

    fn endpoint(&mut self) -> &mut ServerEndpoint {
        &mut self.endpoint
    }

    fn on_event(&mut self, request: Command, _ctx: &mut IoCtx<'_>) {
        self.handle(request);
    }

    fn on_closed(&mut self, reason: &CloseReason, _ctx: &mut IoCtx<'_>) {
        self.shared.client_closed();
        let peer = self.peer;
        if reason.is_orderly() {
            tracing::debug!(%peer, "client disconnected: {reason}");
        } else {
            tracing::warn!(%peer, host = self.host, user = self.user, "client disconnected: {reason}");
        }
        // The endpoint's book ended the channels and subscriptions in `handle_closed`.
    }
}

/// Elements of a failure reply: what was asked for, at most what the channel holds; a
/// dynamic-size request (0) gets 0, as from rsrv.
fn zeroed_count(requested: u32, channel: u32) -> u32 {
    requested.min(channel.max(1))
}

/// A zeroed payload of `count` elements of `data_type` (the value of a failed read); at
/// least one element's room, as rsrv's `dbr_size_n(type, 0)`.
fn zeroed(data_type: DbrType, count: u32) -> bytes::Bytes {
    bytes::Bytes::from(vec![0u8; data_type.padded_payload_size(count.max(1)) as usize])
}

/// How long a client may leave its socket unread before it is disconnected.
pub const DEFAULT_SEND_STALL_TIMEOUT: Duration = Duration::from_secs(30);
