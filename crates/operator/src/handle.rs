//! The interface the HTTP API uses to reach the running controller.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// A boxed future, so the trait stays object-safe (`Arc<dyn ControllerHandle>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What `reborn plan` shows: the next pass's plan, computed from a fresh PVE read by the same
/// planner the loop uses, without executing anything.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanReport {
    /// The plan rendered for a person (the planner's `Display`).
    pub text: String,
    /// The plan as data (the planner's serde form).
    pub plan: serde_json::Value,
}

/// The circuit breaker as the controller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerView {
    /// True when automatic destruction is held.
    pub tripped: bool,
    /// Why it tripped (or was released), for a person.
    pub reason: Option<String>,
    /// Who released it last, if a person did.
    pub released_by: Option<String>,
}

/// Errors the controller reports to the API.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// PVE could not be read, so no plan can be made.
    #[error("PVE is unreachable: {0}")]
    PveUnavailable(String),
    /// The store failed.
    #[error("store error: {0}")]
    Store(String),
    /// The controller is shutting down.
    #[error("the controller is not running")]
    NotRunning,
}

/// The running controller, as the API sees it.
pub trait ControllerHandle: Send + Sync {
    /// Wake the loop now (it re-reads everything; why it ran does not matter).
    fn wake(&self);
    /// Compute the plan the next pass would execute, from a fresh read, without executing it.
    fn plan(&self) -> BoxFuture<'_, Result<PlanReport, HandleError>>;
    /// The breaker's state.
    fn breaker(&self) -> BreakerView;
    /// A person releases the breaker; automatic destruction resumes within the budgets.
    fn release_breaker(&self, by: &str) -> Result<BreakerView, HandleError>;
}
