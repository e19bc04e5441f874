//! Reaching a socket handler on its I/O thread from any thread.

use std::sync::{Arc, OnceLock};

use pvloom_core::mio::Token;
use pvloom_core::{IoCtx, IoHandler, Keep, RuntimeHandle};

/// Where a handler lives: its I/O thread and (once registered) its token. The marker
/// `M` is shared with the handler, so a stale token reused by another handler of the
/// same type is never mistaken for ours.
pub(crate) struct HandlerAddress<M> {
    pub(crate) runtime: RuntimeHandle,
    pub(crate) thread: usize,
    pub(crate) token: OnceLock<Token>,
    pub(crate) marker: Arc<M>,
}

/// A handler that knows its marker.
pub(crate) trait Marked: IoHandler {
    type Marker: Send + Sync + 'static;
    fn marker(&self) -> &Arc<Self::Marker>;
}

impl<M: Send + Sync + 'static> HandlerAddress<M> {
    pub(crate) fn new(runtime: RuntimeHandle, thread: usize, marker: Arc<M>) -> Arc<Self> {
        Arc::new(HandlerAddress { runtime, thread, token: OnceLock::new(), marker })
    }

    /// Run `f` on the handler's thread with the handler; `missing` runs instead when
    /// the handler is gone. Returns false if the runtime is shut down (neither runs).
    pub(crate) fn exec<H>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut H, &mut IoCtx<'_>) -> Keep + Send + 'static,
        missing: impl FnOnce() + Send + 'static,
    ) -> bool
    where
        H: Marked<Marker = M>,
    {
        let address = self.clone();
        self.runtime
            .run_on(self.thread, move |ctx| {
                let matched = address.token.get().and_then(|&token| {
                    ctx.with_handler::<H, _>(token, |handler, ctx| {
                        if Arc::ptr_eq(handler.marker(), &address.marker) {
                            (true, f(handler, ctx))
                        } else {
                            (false, Keep::Yes)
                        }
                    })
                });
                if matched != Some(true) {
                    missing();
                }
            })
            .is_ok()
    }
}
