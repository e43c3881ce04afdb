//! CFactory's domain: the centre of the hexagon.
//!
//! Everything here is pure: completion events and their parsing, correlation keys, the
//! status taxonomy, evidence gates, WorkItems and the correlation rules that thread events
//! into them. Outbound needs (storage, time) are the traits in [`ports`]; adapters in other
//! crates implement them. This crate depends on no I/O crate.

pub mod actions;
pub mod audit;
pub mod clock;
pub mod correlate;
pub mod event;
pub mod ids;
pub mod insights;
pub mod memory;
pub mod ports;
pub mod proof;
pub mod services;
pub mod taxonomy;
pub mod upstream;
pub mod workitem;

pub use clock::{Clock, FakeClock, SystemClock};
pub use correlate::{Batch, ChangeSet, EventRecord, IngestOutcome, Loaded};
pub use event::{CompletionEvent, EventError, Service};
pub use ids::{CorrelationKey, EventId, Identifier, TenantId};
pub use taxonomy::StatusClass;
pub use workitem::{StageName, WorkItem};
