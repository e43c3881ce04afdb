//! Simulated PFactory, AIFactory and TFactory.
//!
//! The simulator plays the three foreign services CFactory sits over: it serves their
//! REST and WebSocket surfaces (their wire format, not CFactory's types), drives units of
//! work through plan → code → test, and POSTs their completion envelopes to a webhook.
//! `cfactory demo`, the end-to-end tests and the benchmarks start it through
//! [`Simulator::start`].
//!
//! Time is simulated: every step of every unit sits on one queue ordered by simulated
//! time, so one seed always gives the same ids and the same order of events.

mod api;
mod config;
mod driver;
mod envelope;
mod webhook;
mod world;

pub use config::{Scenario, SimArgs, SimConfig};
pub use driver::{SimHandle, SimStats, Simulator, planned_completion_times};
