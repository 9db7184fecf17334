//! Points in Qdrant's shapes: upsert (list and batch forms, vectors or documents to embed),
//! retrieve, delete, payload and vector updates, scroll and count.

use std::collections::BTreeMap;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use mnemo_store::{Point, PointChange, PointId, PointSelector, ScrollRequest, Vector};
use serde_json::{Map, Value, json};

use super::collections::answer;
use super::convert::{
    PayloadOut, VectorIn, embed_documents, read_count, read_filter, read_id, read_ids,
    read_point_vectors, read_vector_selection, record_json, refuse_present,
};
use super::{Body, QdrantError, QdrantResult, Shared, Started, run, update_result};

/// What a write request may carry that changes nothing here (shards are one, every write is
/// applied before it is answered).
const REFUSED_IN_WRITES: &[&str] = &["shard_key", "update_filter"];

/// A point to write, its documents not yet embedded.
struct PointIn {
    id: PointId,
    vectors: BTreeMap<String, VectorIn>,
    payload: Value,
}

/// `PUT /collections/{collection}/points`: `{"points": [...]}` or `{"batch": {"ids",
/// "vectors", "payloads"}}`; all or none.
pub(crate) async fn upsert(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let written = async {
        refuse_present(&body, REFUSED_IN_WRITES)?;
        let points = match (body.get("points"), body.get("batch")) {
            (Some(points), None) => read_points(points)?,
            (None, Some(batch)) => read_batch(batch)?,
            _ => {
                return Err(QdrantError::bad(
                    "give `points` (a list of points) or `batch` (ids, vectors, payloads)",
                ));
            }
        };
        state
            .check_batch("points", points.len())
            .map_err(QdrantError::from)?;
        let metrics = state.metrics.clone();
        run(&state, move |engine| {
            let mut points = points;
            let embedded = embed_documents(
                engine,
                points
                    .iter_mut()
                    .flat_map(|point| point.vectors.values_mut()),
            )?;
            if embedded > 0 {
                metrics.observe_embedding(embedded, 0);
            }
            let points = points
                .into_iter()
                .enumerate()
                .map(|(index, point)| {
                    Ok(Point {
                        id: point.id,
                        vectors: stored_vectors(point.vectors, index)?,
                        payload: point.payload,
                    })
                })
                .collect::<QdrantResult<Vec<Point>>>()?;
            engine.store().upsert(&name, points)?;
            Ok(update_result())
        })
        .await
    }
    .await;
    answer(started, written)
}

/// The vectors of the point at `index` of a request, its documents embedded by now.
fn stored_vectors(
    vectors: BTreeMap<String, VectorIn>,
    index: usize,
) -> QdrantResult<BTreeMap<String, Vector>> {
    vectors
        .into_iter()
        .map(|(vector_name, vector)| {
            let at = format!("points[{index}].vector.{vector_name}");
            Ok((vector_name, vector.into_vector(&at)?))
        })
        .collect()
}

/// A list of names (payload fields, vectors) at `field`.
fn read_names(body: &Map<String, Value>, field: &str, what: &str) -> QdrantResult<Vec<String>> {
    body.get(field)
        .and_then(Value::as_array)
        .and_then(|names| {
            names
                .iter()
                .map(|name| name.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| QdrantError::bad(format!("`{field}`: expected a list of {what}")))
}

fn read_points(points: &Value) -> QdrantResult<Vec<PointIn>> {
    let items = points
        .as_array()
        .ok_or_else(|| QdrantError::bad("`points`: expected a list of points"))?;
    items
        .iter()
        .enumerate()
        .map(|(index, point)| {
            let at = format!("points[{index}]");
            let id = read_id(
                point
                    .get("id")
                    .ok_or_else(|| QdrantError::bad(format!("{at}: no `id`")))?,
                &format!("{at}.id"),
            )?;
            let vector = point
                .get("vector")
                .or_else(|| point.get("vectors"))
                .ok_or_else(|| QdrantError::bad(format!("{at} (id {id}): no `vector`")))?;
            Ok(PointIn {
                id,
                vectors: read_point_vectors(vector, &format!("{at}.vector"))?,
                payload: point.get("payload").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

fn read_batch(batch: &Value) -> QdrantResult<Vec<PointIn>> {
    let ids = read_ids(
        batch
            .get("ids")
            .ok_or_else(|| QdrantError::bad("batch: no `ids`"))?,
        "batch.ids",
    )?;
    let vectors = batch
        .get("vectors")
        .ok_or_else(|| QdrantError::bad("batch: no `vectors`"))?;
    // A list (one per id, unnamed) or named lists.
    let mut per_point: Vec<BTreeMap<String, VectorIn>> = vec![BTreeMap::new(); ids.len()];
    let mut fill = |vector_name: &str, list: &Value, at: &str| -> QdrantResult<()> {
        let items = list
            .as_array()
            .ok_or_else(|| QdrantError::bad(format!("{at}: expected one vector per id")))?;
        if items.len() != ids.len() {
            return Err(QdrantError::bad(format!(
                "{at}: {} vectors for {} ids",
                items.len(),
                ids.len()
            )));
        }
        for (index, item) in items.iter().enumerate() {
            per_point[index].insert(
                vector_name.to_owned(),
                VectorIn::read(item, &format!("{at}[{index}]"), false)?,
            );
        }
        Ok(())
    };
    match vectors {
        Value::Object(named) => {
            for (vector_name, list) in named {
                fill(vector_name, list, &format!("batch.vectors.{vector_name}"))?;
            }
        }
        list => fill("", list, "batch.vectors")?,
    }
    let payloads = match batch.get("payloads") {
        None | Some(Value::Null) => vec![Value::Null; ids.len()],
        Some(Value::Array(payloads)) if payloads.len() == ids.len() => payloads.clone(),
        Some(_) => {
            return Err(QdrantError::bad(format!(
                "batch.payloads: expected one payload (or null) per id, {} ids",
                ids.len()
            )));
        }
    };
    Ok(ids
        .into_iter()
        .zip(per_point)
        .zip(payloads)
        .map(|((id, vectors), payload)| PointIn {
            id,
            vectors,
            payload,
        })
        .collect())
}

/// `POST /collections/{collection}/points`: `{"ids", "with_payload", "with_vector"}`; the
/// points that exist, in the order asked.
pub(crate) async fn retrieve(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let found = async {
        refuse_present(&body, &["shard_key"])?;
        let ids = read_ids(
            body.get("ids")
                .ok_or_else(|| QdrantError::bad("`ids`: expected a list of point ids"))?,
            "ids",
        )?;
        state
            .check_batch("ids", ids.len())
            .map_err(QdrantError::from)?;
        let payload = PayloadOut::read(body.get("with_payload"), false)?;
        let vectors = read_vector_selection(
            body.get("with_vector").or_else(|| body.get("with_vectors")),
            false,
        )?;
        run(&state, move |engine| {
            let records =
                engine
                    .store()
                    .get(&name, &ids, payload.selection.clone(), vectors.clone())?;
            Ok(Value::Array(
                records
                    .into_iter()
                    .map(|record| record_json(record, &payload, &vectors))
                    .collect(),
            ))
        })
        .await
    }
    .await;
    answer(started, found)
}

/// `GET /collections/{collection}/points/{id}`: with its payload and vectors.
pub(crate) async fn get_one(
    state: Shared,
    started: Started,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let found = async {
        let id: PointId = id.parse().map_err(|_| {
            QdrantError::bad(format!(
                "`{id}` is not a point id (an unsigned integer or a UUID)"
            ))
        })?;
        let payload = PayloadOut::read(None, true)?;
        let vectors = mnemo_store::VectorSelection::All;
        run(&state, move |engine| {
            let record = engine
                .store()
                .get(&name, &[id], payload.selection.clone(), vectors.clone())?
                .pop()
                .ok_or_else(|| {
                    QdrantError::new(
                        StatusCode::NOT_FOUND,
                        format!("Not found: Point with id {id} does not exists!"),
                    )
                })?;
            Ok(record_json(record, &payload, &vectors))
        })
        .await
    }
    .await;
    answer(started, found)
}

/// Qdrant's `PointsSelector`: `{"points": [ids]}` or `{"filter": {...}}`.
fn read_selector(body: &Map<String, Value>) -> QdrantResult<PointSelector> {
    match (body.get("points"), body.get("filter")) {
        (Some(points), None) => Ok(PointSelector::Ids(read_ids(points, "points")?)),
        (None, Some(_)) => Ok(PointSelector::Filter(
            read_filter(body.get("filter"), "filter")?.unwrap_or_default(),
        )),
        _ => Err(QdrantError::bad(
            "give `points` (a list of ids) or `filter`, one of them",
        )),
    }
}

/// `POST /collections/{collection}/points/delete`.
pub(crate) async fn delete(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let deleted = async {
        refuse_present(&body, &["shard_key"])?;
        let selector = read_selector(&body)?;
        run(&state, move |engine| {
            engine.store().delete(&name, selector)?;
            Ok(update_result())
        })
        .await
    }
    .await;
    answer(started, deleted)
}

/// Applies `change` to the points the body selects.
async fn change_points(
    state: Shared,
    started: Started,
    name: String,
    body: &Map<String, Value>,
    change: QdrantResult<PointChange>,
) -> Response {
    let changed = async {
        refuse_present(body, &["shard_key"])?;
        let change = change?;
        let selector = read_selector(body)?;
        run(&state, move |engine| {
            engine.store().collection_config(&name)?;
            engine.store().update_points(&name, &selector, &change)?;
            Ok(update_result())
        })
        .await
    }
    .await;
    answer(started, changed)
}

fn read_payload(body: &Map<String, Value>) -> QdrantResult<Map<String, Value>> {
    if body.contains_key("key") {
        return Err(QdrantError::unsupported(
            "`key` (setting a payload under a nested key)",
        ));
    }
    match body.get("payload") {
        Some(Value::Object(fields)) => Ok(fields.clone()),
        _ => Err(QdrantError::bad("`payload`: expected a JSON object")),
    }
}

/// `POST /collections/{collection}/points/payload`: these fields set, the others kept.
pub(crate) async fn set_payload(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let change = read_payload(&body).map(PointChange::SetPayload);
    change_points(state, started, name, &body, change).await
}

/// `PUT /collections/{collection}/points/payload`: the payload replaced.
pub(crate) async fn overwrite_payload(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let change = read_payload(&body).map(PointChange::OverwritePayload);
    change_points(state, started, name, &body, change).await
}

/// `POST /collections/{collection}/points/payload/delete`: `{"keys", "points" | "filter"}`.
pub(crate) async fn delete_payload(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let change = read_names(&body, "keys", "payload fields").map(PointChange::DeletePayloadKeys);
    change_points(state, started, name, &body, change).await
}

/// `POST /collections/{collection}/points/payload/clear`: `{"points" | "filter"}`.
pub(crate) async fn clear_payload(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    change_points(state, started, name, &body, Ok(PointChange::ClearPayload)).await
}

/// `POST /collections/{collection}/points/vectors/delete`: `{"vector": [names], "points" |
/// "filter"}`.
pub(crate) async fn delete_vectors(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let change = read_names(&body, "vector", "vector names").map(PointChange::DeleteVectors);
    change_points(state, started, name, &body, change).await
}

/// `PUT /collections/{collection}/points/vectors`: `{"points": [{"id", "vector"}]}`, the named
/// vectors given replaced, the others kept.
pub(crate) async fn update_vectors(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let updated = async {
        refuse_present(&body, REFUSED_IN_WRITES)?;
        let points = read_points(body.get("points").ok_or_else(|| {
            QdrantError::bad("`points`: expected a list of {\"id\", \"vector\"}")
        })?)?;
        state
            .check_batch("points", points.len())
            .map_err(QdrantError::from)?;
        run(&state, move |engine| {
            let mut points = points;
            embed_documents(
                engine,
                points
                    .iter_mut()
                    .flat_map(|point| point.vectors.values_mut()),
            )?;
            for (index, point) in points.into_iter().enumerate() {
                let vectors = stored_vectors(point.vectors, index)?;
                engine.store().update_points(
                    &name,
                    &PointSelector::Ids(vec![point.id]),
                    &PointChange::SetVectors(vectors),
                )?;
            }
            Ok(update_result())
        })
        .await
    }
    .await;
    answer(started, updated)
}

/// `POST /collections/{collection}/points/scroll`: a page in id order and where the next
/// starts.
pub(crate) async fn scroll(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let page = async {
        refuse_present(&body, &["order_by", "shard_key"])?;
        let limit = read_count(&body, "limit", 10)?;
        if limit == 0 || limit > mnemo_engine::MAX_RESULTS {
            return Err(QdrantError::bad(format!(
                "`limit` {limit}: give 1 to {} points a page",
                mnemo_engine::MAX_RESULTS
            )));
        }
        let mut request = ScrollRequest::new(limit);
        request.filter = read_filter(body.get("filter"), "filter")?;
        request.offset = body
            .get("offset")
            .map(|offset| read_id(offset, "offset"))
            .transpose()?;
        let payload = PayloadOut::read(body.get("with_payload"), true)?;
        let vectors = read_vector_selection(
            body.get("with_vector").or_else(|| body.get("with_vectors")),
            false,
        )?;
        request.with_payload = payload.selection.clone();
        request.with_vectors = vectors.clone();
        run(&state, move |engine| {
            let page = engine.store().scroll(&name, request)?;
            let points: Vec<Value> = page
                .points
                .into_iter()
                .map(|record| record_json(record, &payload, &vectors))
                .collect();
            Ok(json!({ "points": points, "next_page_offset": page.next }))
        })
        .await
    }
    .await;
    answer(started, page)
}

/// `POST /collections/{collection}/points/count`: exact counts only.
pub(crate) async fn count(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let counted = async {
        refuse_present(&body, &["shard_key"])?;
        let filter = read_filter(body.get("filter"), "filter")?;
        run(&state, move |engine| {
            let count = engine.store().count(&name, filter.as_ref())?;
            Ok(json!({ "count": count }))
        })
        .await
    }
    .await;
    answer(started, counted)
}
