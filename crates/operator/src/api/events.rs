//! `GET /v1/events`: the event log, filtered, and with `?follow=true` an NDJSON stream that
//! stays open and sends each new event as it is committed (woken by `Store::subscribe`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use store::{Event, EventQuery, Revision, Store};
use tokio::sync::watch;

use super::ApiState;
use super::error::ApiError;
use super::wire::EventList;

/// How many events a request returns when it sets no `limit` (the most recent ones).
pub const DEFAULT_EVENT_LIMIT: usize = 200;

/// The `Content-Type` of the follow stream.
pub const NDJSON: &str = "application/x-ndjson";

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    /// Only events about this node.
    #[serde(default)]
    node: Option<String>,
    /// Only events of this kind.
    #[serde(default)]
    kind: Option<String>,
    /// Only events at or after this time: RFC 3339, or a duration back from now (`10m`).
    #[serde(default)]
    since: Option<String>,
    /// At most this many (the most recent); default 200.
    #[serde(default)]
    limit: Option<usize>,
    /// Only events with an id greater than this.
    #[serde(default)]
    after: Option<i64>,
    /// Keep the response open and stream new events as NDJSON.
    #[serde(default)]
    follow: Option<String>,
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "true" | "yes"))
}

fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let d: model::Duration = text.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "since: expected an RFC 3339 time or a duration such as 10m, got {text:?}"
        ))
    })?;
    let secs = i64::try_from(d.as_secs())
        .map_err(|_| ApiError::BadRequest("since is too far back".to_owned()))?;
    Ok(now - chrono::Duration::seconds(secs))
}

/// `GET /v1/events`.
pub(crate) async fn list(
    State(state): State<ApiState>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let since = q
        .since
        .as_deref()
        .map(|s| parse_since(s, state.now()))
        .transpose()?;
    let query = EventQuery {
        node: q.node,
        kind: q.kind,
        since,
        until: None,
        after_id: q.after,
        limit: Some(q.limit.unwrap_or(DEFAULT_EVENT_LIMIT).max(1)),
    };
    if !truthy(q.follow.as_deref()) {
        let items = state
            .blocking(move |store| Ok(store.events(&query)?))
            .await?;
        return Ok(Json(EventList { items }).into_response());
    }
    // Subscribe before the first read so nothing committed in between is missed.
    let changes = state.store().subscribe();
    let first = query.clone();
    let backlog = state
        .blocking(move |store| Ok(store.events(&first)?))
        .await?;
    let follow = Follow {
        store: state.store().clone(),
        last_id: backlog.last().map(|e| e.id).or(query.after_id),
        query: EventQuery {
            limit: None,
            ..query
        },
        buffer: backlog.into(),
        changes,
        shutdown: state.shutdown_signal(),
    };
    let stream = futures_util::stream::unfold(follow, |mut f| async move {
        let event = f.next().await?;
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<Bytes, Infallible>(Bytes::from(line)), f))
    });
    let mut response = Body::from_stream(stream).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The state of one follow stream.
struct Follow {
    store: Arc<dyn Store>,
    query: EventQuery,
    last_id: Option<i64>,
    buffer: VecDeque<Event>,
    changes: watch::Receiver<Revision>,
    shutdown: watch::Receiver<bool>,
}

impl Follow {
    /// The next event, waiting for commits as needed; `None` ends the stream (shutdown, store
    /// gone, or a read error, which is logged).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                self.last_id = Some(e.id);
                return Some(e);
            }
            if *self.shutdown.borrow() {
                return None;
            }
            tokio::select! {
                changed = self.changes.changed() => changed.ok()?,
                _ = self.shutdown.changed() => return None,
            }
            let store = self.store.clone();
            let query = EventQuery {
                after_id: self.last_id,
                ..self.query.clone()
            };
            match tokio::task::spawn_blocking(move || store.events(&query)).await {
                Ok(Ok(events)) => self.buffer.extend(events),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "event follow stream ends: store read failed");
                    return None;
                }
                Err(_) => return None,
            }
        }
    }
}
