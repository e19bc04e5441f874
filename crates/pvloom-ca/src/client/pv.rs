//! A process variable: the API over the core's [`PvShared`].

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pvloom_core::Completion;

use super::core::{Phase, PvShared};
use super::error::{CaError, CaResult};
use super::options::{ConnectionState, DbrValue, ReadOptions, WriteOptions};
use super::response::Response;
use crate::proto::DbrType;
use crate::proto::command::AccessRights;

/// A PV: a name, the channel behind it, and operations on it. Cheap to clone.
///
/// Made by [`Context::get_pvs`](super::Context::get_pvs); connecting happens in the
/// background and resumes by itself after a server restart.
#[derive(Clone)]
pub struct Pv {
    pub(crate) shared: Arc<PvShared>,
}

impl std::fmt::Debug for Pv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pv").field("name", &self.shared.name).field("connected", &self.connected()).finish()
    }
}

impl Pv {
    /// The PV's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The circuit priority it asked for (0..=99).
    pub fn priority(&self) -> u16 {
        self.shared.priority
    }

    /// True while connected.
    pub fn connected(&self) -> bool {
        self.shared.phase() == Phase::Connected
    }

    /// The channel's native DBR type, once connected.
    pub fn native_type(&self) -> Option<DbrType> {
        self.shared.state.lock().link.as_ref().map(|l| l.native_type)
    }

    /// The channel's element count, once connected.
    pub fn element_count(&self) -> Option<u32> {
        self.shared.state.lock().link.as_ref().map(|l| l.count)
    }

    /// Read/write rights granted by the server.
    pub fn access_rights(&self) -> AccessRights {
        self.shared.state.lock().access
    }

    /// The server holding the channel (the last one, while disconnected).
    pub fn server_address(&self) -> Option<SocketAddrV4> {
        self.shared.state.lock().last_server
    }

    /// Time since anything was heard from this PV's server (beacon or circuit traffic).
    pub fn time_since_last_heard(&self) -> Option<Duration> {
        let server = self.server_address()?;
        self.shared.context.upgrade()?.time_since_last_heard(server)
    }

    /// Wait until connected.
    ///
    /// # Errors
    /// [`CaError::ConnectionTimeout`] naming the PV; `WouldDeadlock` on an I/O thread.
    pub fn wait_for_connection(&self, timeout: Option<Duration>) -> CaResult<()> {
        let timeout = timeout.unwrap_or_else(|| self.shared.default_timeout());
        if self.shared.connected.wait_timeout(timeout)? {
            Ok(())
        } else {
            Err(CaError::ConnectionTimeout { name: self.shared.name.clone(), timeout })
        }
    }

    /// Call `callback(pv, state)` on every connection change; returns a token for
    /// [`remove_connection_callback`](Self::remove_connection_callback).
    pub fn add_connection_callback(&self, callback: impl Fn(&Pv, ConnectionState) + Send + Sync + 'static) -> u64 {
        let token = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        // The callback lives in the PV: it holds the PV weakly, or the PV would never go.
        let pv = Arc::downgrade(&self.shared);
        let call = move |state| {
            if let Some(shared) = pv.upgrade() {
                callback(&Pv { shared }, state);
            }
        };
        self.shared.state.lock().connection_callbacks.push((token, Arc::new(call)));
        token
    }

    /// Remove a connection callback.
    pub fn remove_connection_callback(&self, token: u64) {
        let removed = take_token(&mut self.shared.state.lock().connection_callbacks, token);
        // Dropped after the lock: the last reference to a binding's callback may run
        // its finalizer, which may let in a thread that wants this lock.
        drop(removed);
    }

    /// Call `callback(pv, rights)` whenever the server changes the access rights.
    pub fn add_access_rights_callback(&self, callback: impl Fn(&Pv, AccessRights) + Send + Sync + 'static) -> u64 {
        let token = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        let pv = Arc::downgrade(&self.shared);
        let call = move |rights| {
            if let Some(shared) = pv.upgrade() {
                callback(&Pv { shared }, rights);
            }
        };
        self.shared.state.lock().access_callbacks.push((token, Arc::new(call)));
        token
    }

    /// Remove an access-rights callback.
    pub fn remove_access_rights_callback(&self, token: u64) {
        let removed = take_token(&mut self.shared.state.lock().access_callbacks, token);
        drop(removed);
    }

    /// Read with default options (blocking).
    ///
    /// # Errors
    /// Timeout naming the PV, no read access, server error, `WouldDeadlock`.
    pub fn read(&self) -> CaResult<Response> {
        self.read_with(ReadOptions { notify: true, ..Default::default() })
    }

    /// Read (blocking): [`read_async`](Self::read_async) plus a wait.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_with(&self, options: ReadOptions) -> CaResult<Response> {
        let timeout = options.timeout.unwrap_or_else(|| self.shared.default_timeout());
        self.read_async(options)
            .wait_timeout(timeout + Duration::from_millis(50))
            .map_err(|e| CaError::from_core(e, &self.shared.name, "read"))
    }

    /// Read without waiting: the handle completes with the response, or an error
    /// after `options.timeout`.
    pub fn read_async(&self, options: ReadOptions) -> Completion<Response> {
        self.shared.read_async(options)
    }

    /// Write with notify and wait (blocking).
    ///
    /// # Errors
    /// Timeout, no write access, server error (e.g. `ECA_PUTFAIL`), bad value.
    pub fn write(&self, value: impl Into<DbrValue>) -> CaResult<()> {
        self.write_with(value, WriteOptions::default())
    }

    /// Write (blocking): [`write_async`](Self::write_async) plus a wait.
    ///
    /// # Errors
    /// As [`write`](Self::write).
    pub fn write_with(&self, value: impl Into<DbrValue>, options: WriteOptions) -> CaResult<()> {
        let timeout = options.timeout.unwrap_or_else(|| self.shared.default_timeout());
        self.write_async(value, options)
            .wait_timeout(timeout + Duration::from_millis(50))
            .map_err(|e| CaError::from_core(e, &self.shared.name, "write"))
    }

    /// Write without waiting: with `notify` the handle completes when the server
    /// reports the put done; without, once the request is sent.
    pub fn write_async(&self, value: impl Into<DbrValue>, options: WriteOptions) -> Completion<()> {
        self.shared.write_async(value.into().0, options)
    }

    /// Ask this PV's server to pause subscription updates on its circuit (caproto:
    /// `pv.circuit_manager.events_off()`).
    pub fn events_off(&self) {
        self.set_events(false);
    }

    /// Resume subscription updates on this PV's circuit; the latest values arrive.
    pub fn events_on(&self) {
        self.set_events(true);
    }

    fn set_events(&self, on: bool) {
        self.shared.set_events(on);
    }

    /// Clear the channel to spare client and server; any later operation connects
    /// again. Does nothing while a subscription is active (as caproto).
    pub fn go_idle(&self) {
        self.shared.go_idle();
    }
}

/// The entry registered under `token`, taken out of `entries`.
fn take_token<T>(entries: &mut Vec<(u64, T)>, token: u64) -> Option<(u64, T)> {
    let at = entries.iter().position(|(t, _)| *t == token)?;
    Some(entries.remove(at))
}
