//! Advise-and-confirm actions: what the copilot (or a person, through the API) may propose
//! to do to an upstream service, and the port that keeps the proposals until a person
//! confirms or rejects them, or they expire.
//!
//! Its room in the hexagon: the domain. [`plan_action`] is a pure function from an action
//! kind, a WorkItem and its timeline to the exact upstream call the family's contracts
//! describe (`shared/contracts/README.md`, "The upstream services as their code serves
//! them"), or a [`Refusal`] saying why the item is not in a state where the action makes
//! sense. [`ActionService`] owns the lifecycle (propose, confirm, reject, expire, and the
//! audit of each decision); it sends a confirmed action's steps through the
//! [`StepSender`](crate::ports::StepSender) port to [`PreparedAction::target_service`]. A proposal's
//! endpoint is always root-relative ([`Endpoint`]) and its method one of a fixed set
//! ([`HttpMethod`]), so a proposal cannot point anywhere but the target service. No caller
//! (and no language model) chooses the service, the method or the endpoint: only the
//! planner does, from the item's state.
//!
//! Values known only when a person confirms (who approved, and when) are written into
//! payloads as the placeholders [`APPROVER`] and [`CONFIRMED_AT`]; [`fill_placeholders`]
//! replaces them at confirm time.

mod endpoint;
#[cfg(test)]
mod fixtures;
mod kinds;
mod placeholders;
mod planner;
mod prepared;
mod sender;
mod service;
mod store;

pub use crate::ports::{ActionPage, ActionStore};
pub use endpoint::{Endpoint, EndpointError, HttpMethod, MAX_ENDPOINT_CHARS};
pub use kinds::ActionKind;
pub use placeholders::{APPROVER, CONFIRMED_AT, fill_placeholders};
pub use planner::{
    ActionPlan, MAX_NOTE_CHARS, PlanContext, Refusal, available_actions, plan_action,
};
pub use prepared::{
    ActionStatus, ActionStep, Actor, DEFAULT_ACTION_TTL_SECONDS, Door, PreparedAction, StepResult,
};
pub use sender::RecordingSender;
pub use service::{
    ActionError, ActionService, ActionServiceParts, ItemActions, MAX_PLANNED_EVENTS,
};
pub use store::InMemoryActions;
