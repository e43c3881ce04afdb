//! Shared HTTP and WebSocket plumbing for CFactory's upstream adapters: bearer auth, health
//! classification, paged reads, reconnecting feeds, read-only agent consoles.
//!
//! This crate sits in the adapters ring of the hexagon. It may touch the network (reqwest,
//! tokio-tungstenite) but none of those types leave it: callers see [`UpstreamConfig`],
//! [`UpstreamClient`], JSON values and the domain's upstream types.

mod client;
mod config;
mod console;
mod feed;
pub mod fields;
mod list;
mod probe;

pub use client::{MAX_BODY_BYTES, STEP_TIMEOUT, UpstreamClient, path_segment};
pub use config::{ConfigError, UpstreamConfig};
pub use console::{ConsoleSocket, IsControlFrame, MAX_CONSOLE_FRAME_BYTES, open_console};
pub use feed::{follow_feeds, follow_feeds_in};
pub use list::read_task_list;
pub use probe::{probe, probe_with_token_check};
