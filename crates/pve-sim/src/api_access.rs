//! `POST /access/ticket`: password login returning a ticket and a CSRF token.

use serde_json::json;

use crate::auth;
use crate::dispatch::Ctx;
use crate::http::Reply;
use crate::params::ApiError;

fn failure() -> ApiError {
    ApiError::Status {
        code: 401,
        message: "authentication failure".into(),
    }
}

pub(crate) fn ticket(ctx: &Ctx) -> Result<Reply, ApiError> {
    let cfg = &ctx.shared.config;
    let mut username = ctx.p.get("username").cloned().unwrap_or_default();
    if !username.contains('@') {
        let realm = ctx.p.get("realm").cloned().unwrap_or_else(|| "pam".into());
        username = format!("{username}@{realm}");
    }
    let password = ctx.p.get("password").cloned().unwrap_or_default();
    let user = cfg
        .users
        .iter()
        .find(|u| u.userid == username && u.enabled)
        .ok_or_else(failure)?;
    let now = chrono::Utc::now().timestamp();
    let by_password = user.password == password;
    // Renewal: a valid ticket of the same user (or of root@pam) is accepted as password.
    let by_ticket = auth::verify_ticket(
        &ctx.shared.ticket_key,
        &password,
        now,
        cfg.ticket_lifetime_secs as i64,
    )
    .is_some_and(|u| u == username || u == "root@pam");
    if !by_password && !by_ticket {
        return Err(failure());
    }
    let ticket = auth::make_ticket(&ctx.shared.ticket_key, &username, now);
    let csrf = auth::make_csrf(&ctx.shared.ticket_key, &username, now);
    Ok(Reply::data(json!({
        "username": username,
        "ticket": ticket,
        "CSRFPreventionToken": csrf,
        "cap": {
            "vms": {"VM.Audit": 1, "VM.PowerMgmt": 1, "VM.Allocate": 1, "VM.Clone": 1, "VM.Config.Options": 1},
            "nodes": {"Sys.Audit": 1},
            "storage": {"Datastore.Audit": 1, "Datastore.AllocateSpace": 1},
            "access": {}, "dc": {}, "sdn": {}, "mapping": {},
        },
        "clustername": "reborn-sim",
    })))
}
