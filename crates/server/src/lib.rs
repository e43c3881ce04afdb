//! The `cfactory` server: axum routers, authentication, configuration and the command
//! line, wired over the domain's ports. Thin by design: parse a request into domain types,
//! call the domain or a store port, map the result.

pub mod access;
pub mod actions;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod data_dir;
pub mod demo;
pub mod guard;
pub mod keys;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod problem;
pub mod readmodel;
pub mod scim;
pub mod session;
pub mod settings;
pub mod sso;
pub mod state;
pub mod stores;
pub mod ui;
pub mod upstream_factory;
pub mod webhooks;
