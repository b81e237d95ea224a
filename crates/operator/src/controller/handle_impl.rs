//! `ControllerHandle` for the API: wake, plan, breaker, release.

use std::sync::Arc;

use chrono::Utc;
use planner::BreakerRecord;
use serde_json::json;

use super::Inner;
use super::inputs::{BREAKER_RELEASED, breaker_record};
use crate::handle::{BoxFuture, BreakerView, ControllerHandle, HandleError, PlanReport};

/// The handle the API holds.
pub(crate) struct Handle {
    pub(crate) inner: Arc<Inner>,
}

impl ControllerHandle for Handle {
    fn wake(&self) {
        self.inner.wake.notify_one();
    }

    fn plan(&self) -> BoxFuture<'_, Result<PlanReport, HandleError>> {
        Box::pin(async move {
            let inputs = self.inner.observe_and_plan().await.map_err(|e| match e {
                super::ControllerError::Pve(e) => HandleError::PveUnavailable(e.to_string()),
                other => HandleError::Store(other.to_string()),
            })?;
            let plan = inputs.plan;
            let value =
                serde_json::to_value(&plan).map_err(|e| HandleError::Store(e.to_string()))?;
            Ok(PlanReport {
                text: plan.to_string(),
                plan: value,
            })
        })
    }

    fn breaker(&self) -> BreakerView {
        let planned = self
            .inner
            .lock()
            .last_plan
            .as_ref()
            .map(|p| p.breaker.clone());
        let record = breaker_record(self.inner.store.as_ref()).unwrap_or_default();
        let released_by = match &record {
            BreakerRecord::Released { by, .. } => Some(by.clone()),
            _ => None,
        };
        match planned {
            Some(status) if status.is_tripped() => BreakerView {
                tripped: true,
                reason: match status.state {
                    planner::BreakerState::Tripped { detail, .. } => Some(detail),
                    _ => None,
                },
                released_by,
            },
            _ => BreakerView {
                tripped: matches!(record, BreakerRecord::Tripped { .. }),
                reason: match record {
                    BreakerRecord::Tripped { reason, .. } => Some(reason),
                    _ => None,
                },
                released_by,
            },
        }
    }

    fn release_breaker(&self, by: &str) -> Result<BreakerView, HandleError> {
        self.inner
            .store
            .append_event(store::NewEvent {
                at: Utc::now(),
                node: None,
                kind: BREAKER_RELEASED.to_owned(),
                message: format!("circuit breaker released by {by}; held nodes released"),
                data: json!({"by": by}),
            })
            .map_err(|e| HandleError::Store(e.to_string()))?;
        {
            let mut s = self.inner.lock();
            s.held.clear();
            s.last_plan = None;
        }
        self.inner.wake.notify_one();
        Ok(BreakerView {
            tripped: false,
            reason: None,
            released_by: Some(by.to_owned()),
        })
    }
}
