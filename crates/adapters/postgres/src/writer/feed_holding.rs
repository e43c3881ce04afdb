//! Items written and held for this process's change feed until their transaction
//! commits.

use crate::feed::Held;

/// The writes of one transaction whose items are held for the change feed; dropped
/// before [`Holding::committed`], it lets them go.
pub(super) struct Holding<'h> {
    pub(super) held: &'h Held,
    pub(super) writes: Vec<u64>,
}

impl<'h> Holding<'h> {
    pub(super) fn new(held: &'h Held) -> Self {
        Self {
            held,
            writes: Vec::new(),
        }
    }

    pub(super) fn committed(mut self) {
        self.writes.clear();
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        for seq in self.writes.drain(..) {
            self.held.release(seq);
        }
    }
}
