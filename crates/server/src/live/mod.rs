//! Everything that keeps the cockpit live: the hub that fans changes out to WebSocket
//! clients, the cockpit socket itself, the relay of live agent consoles, the upstream
//! pollers and followers, and the same-host sentinel directory watcher.

pub mod consoles;
pub mod hub;
pub mod sentinel;
pub mod upstreams;
pub mod ws;
