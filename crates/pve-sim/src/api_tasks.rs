//! Task endpoints: list, status, log.

use serde_json::{Map, Value, json};

use crate::dispatch::Ctx;
use crate::http::Reply;
use crate::model::Task;
use crate::params::ApiError;
use crate::tasks::parse_upid;

fn may_see(ctx: &Ctx, t: &Task) -> bool {
    let (user, _) = t.user.split_once('!').unwrap_or((&t.user, ""));
    let own = t.user == ctx.ident.full() || (ctx.ident.tokenid.is_none() && user == ctx.ident.user);
    own || ctx.ident.has("Sys.Audit")
}

fn find<'a>(ctx: &Ctx, cl: &'a crate::model::Cluster) -> Result<Option<&'a Task>, ApiError> {
    let upid = ctx.p.get("upid").cloned().unwrap_or_default();
    let parts =
        parse_upid(&upid).ok_or_else(|| ApiError::param("upid", "unable to parse worker upid"))?;
    Ok(cl
        .task(&upid)
        .filter(|t| t.node == ctx.node && parts.node == ctx.node))
}

fn check_access(ctx: &Ctx, t: &Task) -> Result<(), ApiError> {
    if may_see(ctx, t) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            &format!("/nodes/{}", ctx.node),
            "Sys.Audit",
        ))
    }
}

fn user_fields(t: &Task, e: &mut Map<String, Value>) {
    match t.user.split_once('!') {
        Some((user, token)) => {
            e.insert("user".into(), json!(user));
            e.insert("tokenid".into(), json!(token));
        }
        None => {
            e.insert("user".into(), json!(t.user));
        }
    }
}

pub(crate) fn index(ctx: &Ctx) -> Result<Reply, ApiError> {
    let cl = ctx.shared.lock();
    let t = find(ctx, &cl)?.ok_or_else(|| ApiError::param("upid", "no such task"))?;
    check_access(ctx, t)?;
    Ok(Reply::data(json!([{"name": "log"}, {"name": "status"}])))
}

pub(crate) fn status(ctx: &Ctx) -> Result<Reply, ApiError> {
    let cl = ctx.shared.lock();
    let t = find(ctx, &cl)?.ok_or_else(|| ApiError::param("upid", "no such task"))?;
    check_access(ctx, t)?;
    let mut e = Map::new();
    e.insert("upid".into(), json!(t.upid));
    e.insert("node".into(), json!(t.node));
    e.insert("pid".into(), json!(t.pid));
    e.insert("pstart".into(), json!(t.pstart));
    e.insert("starttime".into(), json!(t.starttime));
    e.insert("type".into(), json!(t.kind));
    e.insert("id".into(), json!(t.id));
    user_fields(t, &mut e);
    match &t.exitstatus {
        Some(x) => {
            e.insert("status".into(), json!("stopped"));
            e.insert("exitstatus".into(), json!(x));
        }
        None => {
            e.insert("status".into(), json!("running"));
        }
    }
    Ok(Reply::data(Value::Object(e)))
}

pub(crate) fn log(ctx: &Ctx) -> Result<Reply, ApiError> {
    if ctx.p.contains_key("download")
        && (ctx.p.contains_key("start") || ctx.p.contains_key("limit"))
    {
        return Err(ApiError::param(
            "download",
            "'download' cannot be used together with 'start' or 'limit'",
        ));
    }
    let cl = ctx.shared.lock();
    let Some(t) = find(ctx, &cl)? else {
        return Ok(Reply {
            data: json!({"n": 1, "t": "unable to open file - No such file or directory"}),
            total: Some(1),
        });
    };
    check_access(ctx, t)?;
    let start: usize = ctx.p.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: usize = ctx
        .p
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let total = t.log.len();
    let lines: Vec<Value> = if total == 0 {
        vec![json!({"n": 1, "t": "no content"})]
    } else {
        t.log
            .iter()
            .enumerate()
            .skip(start)
            .take(if limit == 0 { usize::MAX } else { limit })
            .map(|(i, l)| json!({"n": i + 1, "t": l}))
            .collect()
    };
    Ok(Reply {
        data: Value::Array(lines),
        total: Some(total.max(1) as u64),
    })
}

pub(crate) fn list(ctx: &Ctx) -> Result<Reply, ApiError> {
    let cl = ctx.shared.lock();
    let start: usize = ctx.p.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: usize = ctx
        .p
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let source = ctx.p.get("source").map(String::as_str).unwrap_or("archive");
    let errors_only = ctx.p.get("errors").map(String::as_str) == Some("1");
    let filtered: Vec<&Task> = cl
        .tasks
        .iter()
        .rev()
        .filter(|t| t.node == ctx.node && may_see(ctx, t))
        .filter(|t| ctx.p.get("vmid").is_none_or(|v| *v == t.id))
        .filter(|t| ctx.p.get("typefilter").is_none_or(|f| *f == t.kind))
        .filter(|t| {
            ctx.p
                .get("userfilter")
                .is_none_or(|u| t.user.contains(u.as_str()))
        })
        .filter(|t| match source {
            "active" => t.exitstatus.is_none(),
            "archive" => t.exitstatus.is_some(),
            _ => true,
        })
        .filter(|t| !errors_only || t.exitstatus.as_deref().is_some_and(|x| x != "OK"))
        .collect();
    let total = filtered.len();
    let items: Vec<Value> = filtered
        .into_iter()
        .skip(start)
        .take(if limit == 0 { usize::MAX } else { limit })
        .map(|t| {
            let mut e = Map::new();
            e.insert("upid".into(), json!(t.upid));
            e.insert("node".into(), json!(t.node));
            e.insert("pid".into(), json!(t.pid));
            e.insert("pstart".into(), json!(t.pstart));
            e.insert("starttime".into(), json!(t.starttime));
            e.insert("type".into(), json!(t.kind));
            e.insert("id".into(), json!(t.id));
            user_fields(t, &mut e);
            if let Some(x) = &t.exitstatus {
                e.insert("status".into(), json!(x));
            }
            if let Some(end) = t.endtime {
                e.insert("endtime".into(), json!(end));
            }
            Value::Object(e)
        })
        .collect();
    Ok(Reply {
        data: Value::Array(items),
        total: Some(total as u64),
    })
}
