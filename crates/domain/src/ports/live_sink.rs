//! The [`LiveSink`] port: what an upstream adapter hands each live update, and each change
//! of its live feed's state, to.
//!
//! Its room in the hexagon: a port the upstream adapters call out through; the server's
//! hub implements it.

use crate::event::Service;
use crate::upstream::{FeedState, LiveUpdate};

/// Hears live updates from an upstream's feed.
pub trait LiveSink: Send + Sync {
    /// `service` reported `update`. Must not block.
    fn live_update(&self, service: Service, update: LiveUpdate);

    /// `service`'s live feed at `route` changed state (connected, refused, dropped).
    /// Must not block. The default ignores it.
    fn feed_state(&self, service: Service, route: &str, state: FeedState) {
        let _ = (service, route, state);
    }
}
