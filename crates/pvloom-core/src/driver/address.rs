//! Reaching a driven application on its I/O thread from any thread.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use mio::Token;

use crate::runtime::{IoCtx, IoHandler, Keep, RuntimeHandle};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A handler the driver owns: it has an id (tokens are reused, ids never) and pumps
/// its endpoint after the application was called.
pub trait Driven: IoHandler + Sized {
    /// The application inside.
    type App;
    /// The id given at creation.
    fn driver_id(&self) -> u64;
    /// Run `f` with the application, then pump; `Keep::No` once closed.
    fn call(&mut self, ctx: &mut IoCtx<'_>, f: impl FnOnce(&mut Self::App, &mut IoCtx<'_>)) -> Keep;
}

/// Where a driven connection or socket lives: its runtime, its I/O thread and, once
/// registered, its token. Cheap to share (`Arc`); stale addresses never reach a newer
/// handler that reuses the token.
pub struct Address<H> {
    runtime: RuntimeHandle,
    thread: usize,
    pub(crate) token: OnceLock<Token>,
    id: u64,
    _handler: PhantomData<fn() -> H>,
}

impl<H> std::fmt::Debug for Address<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Address").field("thread", &self.thread).field("id", &self.id).finish()
    }
}

impl<H: Driven> Address<H> {
    /// An address on I/O thread `thread` of `runtime`; open the handler there.
    pub fn new(runtime: RuntimeHandle, thread: usize) -> Arc<Self> {
        let thread = thread % runtime.io_threads().max(1);
        Arc::new(Address {
            runtime,
            thread,
            token: OnceLock::new(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            _handler: PhantomData,
        })
    }

    /// The I/O thread it lives on.
    pub fn thread(&self) -> usize {
        self.thread
    }

    /// The runtime it lives on.
    pub fn runtime(&self) -> &RuntimeHandle {
        &self.runtime
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Run `f` with the application on its I/O thread, then let the driver pump the
    /// endpoint. `missing` runs instead once the handler is gone (closed, or never
    /// opened). Returns false when the runtime is shut down (neither runs).
    pub fn exec(
        self: &Arc<Self>,
        f: impl FnOnce(&mut H::App, &mut IoCtx<'_>) + Send + 'static,
        missing: impl FnOnce() + Send + 'static,
    ) -> bool {
        let address = self.clone();
        self.runtime
            .run_on(self.thread, move |ctx| {
                if !address.exec_here(ctx, f) {
                    missing();
                }
            })
            .is_ok()
    }

    /// As [`exec`](Self::exec), with `state` moved to `f`, or back to `missing` if the
    /// handler is gone: what must reach one of the two (a waiter to complete) needs no
    /// shared slot of its own.
    pub fn exec_with<S: Send + 'static>(
        self: &Arc<Self>,
        state: S,
        f: impl FnOnce(S, &mut H::App, &mut IoCtx<'_>) + Send + 'static,
        missing: impl FnOnce(S) + Send + 'static,
    ) -> bool {
        let address = self.clone();
        self.runtime
            .run_on(self.thread, move |ctx| {
                let mut slot = Some(state);
                let ran = address.exec_here(ctx, |app, ctx| {
                    if let Some(state) = slot.take() {
                        f(state, app, ctx);
                    }
                });
                if !ran && let Some(state) = slot.take() {
                    missing(state);
                }
            })
            .is_ok()
    }

    /// As [`exec`](Self::exec), already on the handler's thread: runs now. False if
    /// the handler is gone or is the one running right now (then use `exec`).
    pub fn exec_here(&self, ctx: &mut IoCtx<'_>, f: impl FnOnce(&mut H::App, &mut IoCtx<'_>)) -> bool {
        let Some(&token) = self.token.get() else { return false };
        let id = self.id;
        let mut f = Some(f);
        ctx.with_handler::<H, _>(token, |handler, ctx| {
            if handler.driver_id() != id {
                return (false, Keep::Yes);
            }
            let f = f.take().expect("called once");
            (true, handler.call(ctx, f))
        }) == Some(true)
    }
}
