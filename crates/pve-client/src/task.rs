//! Waiting for PVE tasks (UPIDs) with a growing poll interval and a hard timeout.

use std::time::Duration;

use tokio::time::Instant;

use crate::client::PveClient;
use crate::error::Error;
use crate::types::TaskStatus;
use crate::upid::Upid;

/// First poll interval.
const FIRST_POLL: Duration = Duration::from_millis(100);
/// Longest poll interval.
const MAX_POLL: Duration = Duration::from_secs(1);
/// How long a freshly returned UPID may be unknown to the node ("no such task").
const VISIBILITY_GRACE: Duration = Duration::from_secs(5);

/// The next poll interval: ×1.5, capped at [`MAX_POLL`].
pub(crate) fn next_interval(current: Duration) -> Duration {
    (current + current / 2).min(MAX_POLL)
}

impl PveClient {
    /// Polls the task until it stops or `timeout` elapses (100 ms, growing ×1.5 to 1 s).
    ///
    /// Returns the final status when the exit status is `OK` or `WARNINGS: n`;
    /// [`Error::TaskFailed`] with PVE's exit text otherwise; [`Error::TaskTimeout`] if it is
    /// still running at the deadline (the task keeps running in PVE). Status reads are retried
    /// like every read; a UPID not yet visible on its node is tolerated for a few seconds.
    pub async fn wait_task(&self, upid: &Upid, timeout: Duration) -> Result<TaskStatus, Error> {
        let started = Instant::now();
        let mut interval = FIRST_POLL;
        loop {
            match self.task_status(upid).await {
                Ok(status) if !status.is_running() => {
                    return if status.is_success() {
                        tracing::debug!(%upid, exitstatus = ?status.exitstatus, "PVE task done");
                        Ok(status)
                    } else {
                        let exitstatus = status
                            .exitstatus
                            .unwrap_or_else(|| "unexpected status".to_owned());
                        tracing::info!(%upid, %exitstatus, "PVE task failed");
                        Err(Error::TaskFailed {
                            upid: upid.clone(),
                            exitstatus,
                        })
                    };
                }
                Ok(_) => {}
                Err(Error::ParameterVerification { ref errors, .. })
                    if started.elapsed() < VISIBILITY_GRACE
                        && errors
                            .get("upid")
                            .is_some_and(|m| m.contains("no such task")) => {}
                Err(e) => return Err(e),
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(Error::TaskTimeout {
                    upid: upid.clone(),
                    waited,
                });
            }
            tokio::time::sleep(interval.min(timeout - waited)).await;
            interval = next_interval(interval);
        }
    }

    /// [`PveClient::wait_task`] for the `Option<Upid>` the mutating calls return: `None`
    /// (PVE finished synchronously) gives `Ok(None)` at once.
    pub async fn wait_task_opt(
        &self,
        upid: Option<&Upid>,
        timeout: Duration,
    ) -> Result<Option<TaskStatus>, Error> {
        match upid {
            Some(upid) => self.wait_task(upid, timeout).await.map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_interval_grows_to_one_second() {
        let mut i = FIRST_POLL;
        let mut seen = vec![i];
        for _ in 0..10 {
            i = next_interval(i);
            seen.push(i);
        }
        assert!(seen.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(seen[1], Duration::from_millis(150));
        assert_eq!(*seen.last().expect("non-empty"), MAX_POLL);
    }
}
