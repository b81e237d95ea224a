//! `operator`: the runtime. The controller loop, the executor (the only code that mutates PVE),
//! readiness checks, the operator HTTP API, the webhook and metrics.
//!
//! Start with [`ControllerHandle`]: the narrow interface between the HTTP API and the running
//! controller. The API writes desired state and taints to the store directly (the store wakes
//! the controller through its change notification); it asks the controller only for what needs
//! the live PVE view (a plan) or the controller's own state (the breaker).
//!
//! Must not depend on: `pve-sim` (tests may use it as a dev-dependency) or the `reborn` binary.

pub mod api;
pub mod config;
pub mod controller;
pub mod executor;
pub mod handle;
pub mod metrics;
pub mod observe;
pub mod readiness;

pub use controller::{Controller, ControllerConfig, ControllerError, PassReport};
pub use handle::{BreakerView, ControllerHandle, HandleError, PlanReport};
