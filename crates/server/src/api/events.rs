//! The durable event log over HTTP: `GET /api/v1/events` pages through it, and
//! `GET /api/v1/events/stream` follows it as server-sent events. Each SSE event carries its
//! log id, so a client that reconnects with `Last-Event-ID` (browsers' `EventSource` does it
//! by itself) resumes after the last event it received: nothing missed, nothing repeated, also
//! when the server restarted in between (the ids are the log's, stored).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use mnemo_engine::{Event, EventQuery, MAX_EVENTS_PER_READ};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AppState, Shared, busy};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// How often a stream looks for new events when it has none to send. The log may be written
/// by other servers (a shared PostgreSQL), so it is read, not only told.
const STREAM_POLL: Duration = Duration::from_millis(250);
/// Events read from the log at once by a stream.
const STREAM_PAGE: usize = 500;
/// Streams open at once; beyond, 503.
pub const MAX_STREAMS: usize = 64;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    /// Events after this id (0: from the oldest kept).
    #[serde(default)]
    after: Option<i64>,
    /// Comma-separated types or families (`job`, `memory.deleted`).
    #[serde(default, rename = "type")]
    types: Option<String>,
    /// At most this many (1 to 1000, default 100).
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    /// Oldest first.
    pub events: Vec<Event>,
    /// The `after` of the next page: the last id of this one, or the `after` asked when empty.
    pub next_after: i64,
}

fn query_params(params: Result<Query<EventsParams>, QueryRejection>) -> ApiResult<EventsParams> {
    params
        .map(|Query(params)| params)
        .map_err(|err| ApiError::new(ErrorCode::InvalidRequest, err.body_text()))
}

fn types_of(types: Option<&str>) -> Vec<String> {
    types
        .map(|types| {
            types
                .split(',')
                .map(str::trim)
                .filter(|kind| !kind.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Events of the durable log, oldest first, after an id.
#[utoipa::path(operation_id = "list_events", get, path = "/api/v1/events", tag = "events",
    params(EventsParams),
    responses((status = 200, body = EventPage)))]
pub(crate) async fn list(
    state: Shared,
    params: Result<Query<EventsParams>, QueryRejection>,
) -> ApiResult<Json<EventPage>> {
    let params = query_params(params)?;
    let after = params.after.unwrap_or(0);
    let query = EventQuery {
        after,
        types: types_of(params.types.as_deref()),
        limit: params.limit.unwrap_or(100),
    };
    let events = state.run(move |engine| Ok(engine.events(&query)?)).await?;
    let next_after = events.last().map_or(after, |event| event.id);
    Ok(Json(EventPage { events, next_after }))
}

/// Follow the log as server-sent events (`id`: the event's id, `event`: its type, `data`: the
/// event as JSON). Starts after `Last-Event-ID`, else after `after`, else with the next event.
#[utoipa::path(operation_id = "stream_events", get, path = "/api/v1/events/stream", tag = "events",
    params(EventsParams,
           ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event")),
    responses((status = 200, content_type = "text/event-stream", description = "The events, as they are written")))]
pub(crate) async fn stream(
    state: Shared,
    headers: HeaderMap,
    params: Result<Query<EventsParams>, QueryRejection>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let params = query_params(params)?;
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|value| value.trim().parse::<i64>().ok())
                .filter(|id| *id >= 0)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidRequest,
                        "the Last-Event-ID header is not an event id",
                    )
                })?,
        ),
    };
    let types = types_of(params.types.as_deref());
    // Checked now, so that a wrong type is a 4xx rather than a stream that ends.
    EventQuery {
        types: types.clone(),
        ..EventQuery::default()
    }
    .check()
    .map_err(|err| ApiError::new(ErrorCode::Unprocessable, err.to_string()))?;
    let after = match resume.or(params.after) {
        Some(after) => after,
        None => state.run(|engine| Ok(engine.last_event_id()?)).await?,
    };
    let permit = Arc::clone(&state.streams)
        .try_acquire_owned()
        .map_err(|_| busy(format!("{MAX_STREAMS} event streams are open already")))?;
    let (sender, receiver) =
        tokio::sync::mpsc::channel::<Result<SseEvent, std::convert::Infallible>>(64);
    let engine = Arc::clone(&state.engine);
    tokio::spawn(async move {
        let _permit = permit;
        let mut cursor = after;
        loop {
            let query = EventQuery {
                after: cursor,
                types: types.clone(),
                limit: STREAM_PAGE,
            };
            let engine = Arc::clone(&engine);
            let page = tokio::task::spawn_blocking(move || engine.events(&query)).await;
            let events = match page {
                Ok(Ok(events)) => events,
                Ok(Err(err)) => {
                    // The client reconnects with its Last-Event-ID and misses nothing.
                    let _ = sender
                        .send(Ok(SseEvent::default().event("error").data(err.to_string())))
                        .await;
                    return;
                }
                Err(_) => return,
            };
            let full = events.len() == STREAM_PAGE;
            for event in events {
                cursor = event.id;
                let sse = SseEvent::default()
                    .id(event.id.to_string())
                    .event(event.kind.clone())
                    .json_data(&event)
                    .unwrap_or_else(|_| SseEvent::default().comment("unserialisable event"));
                if sender.send(Ok(sse)).await.is_err() {
                    return;
                }
            }
            if !full {
                tokio::select! {
                    () = tokio::time::sleep(STREAM_POLL) => {}
                    () = sender.closed() => return,
                }
            }
        }
    });
    Ok(
        Sse::new(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))),
    )
}

const _: () = assert!(STREAM_PAGE <= MAX_EVENTS_PER_READ);

impl AppState {
    /// Event streams that may still open.
    pub fn streams_left(&self) -> usize {
        self.streams.available_permits()
    }
}
