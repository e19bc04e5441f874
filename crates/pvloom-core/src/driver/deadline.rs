//! One runtime timer per driven endpoint, armed at its earliest deadline.

use std::time::Instant;

use mio::Token;

use super::address::Driven;
use crate::runtime::{IoCtx, Keep, TimerId};

/// The timer a driver keeps for its endpoint.
#[derive(Default)]
pub(crate) struct Deadline {
    armed: Option<(Instant, TimerId)>,
}

impl Deadline {
    /// Keep one timer at `want`. A timer already armed earlier stays: when it fires
    /// the endpoint sees an early `handle_timeout` and the timer is re-armed, which
    /// costs less than re-arming on every deadline that moves later (one per reply).
    pub(crate) fn rearm<H: Driven>(
        &mut self,
        ctx: &mut IoCtx<'_>,
        want: Option<Instant>,
        token: Option<Token>,
        fire: fn(&mut H, &mut IoCtx<'_>) -> Keep,
        driver_id: u64,
    ) {
        match (self.armed, want) {
            (Some((at, _)), Some(want)) if want >= at => {}
            (Some((_, id)), _) => {
                ctx.cancel_timer(id);
                self.armed = None;
                self.rearm(ctx, want, token, fire, driver_id);
            }
            (None, Some(want)) => {
                let Some(token) = token else { return };
                let id = ctx.call_at(want, move |ctx| {
                    ctx.with_handler::<H, _>(token, |handler, ctx| {
                        if handler.driver_id() != driver_id {
                            return ((), Keep::Yes);
                        }
                        ((), fire(handler, ctx))
                    });
                });
                self.armed = Some((want, id));
            }
            (None, None) => {}
        }
    }

    /// The armed timer fired (it is gone from the runtime).
    pub(crate) fn fired(&mut self) {
        self.armed = None;
    }

    /// Drop the timer (the handler closes).
    pub(crate) fn cancel(&mut self, ctx: &mut IoCtx<'_>) {
        if let Some((_, id)) = self.armed.take() {
            ctx.cancel_timer(id);
        }
    }
}
