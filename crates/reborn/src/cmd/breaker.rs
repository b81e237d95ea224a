//! `reborn breaker [release]`.

use operator::BreakerView;

use super::client::{Client, ClientError};
use super::{output, print};
use crate::cli::{BreakerAction, BreakerArgs};
use crate::exit_code::ExitStatus;

/// Shows or releases the circuit breaker.
pub async fn run(client: Client, args: &BreakerArgs) -> Result<ExitStatus, ClientError> {
    let view: BreakerView = match args.action {
        None => client.get("/v1/breaker").await?,
        Some(BreakerAction::Release) => {
            client
                .post_json("/v1/breaker/release", &serde_json::json!({}))
                .await?
        }
    };
    let text = output::machine(args.client.output, &view).unwrap_or_else(|| {
        let mut t = if view.tripped {
            "breaker: TRIPPED (automatic destruction is held)\n".to_owned()
        } else {
            "breaker: closed (automatic destruction allowed within budgets)\n".to_owned()
        };
        if let Some(r) = &view.reason {
            t.push_str(&format!("reason: {r}\n"));
        }
        if let Some(by) = &view.released_by {
            t.push_str(&format!("last released by: {by}\n"));
        }
        t
    });
    print(&text);
    Ok(ExitStatus::Success)
}
