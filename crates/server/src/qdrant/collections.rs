//! Collections, aliases, payload indexes and snapshots in Qdrant's shapes.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mnemo_store::{
    AliasChange, CollectionConfig, CollectionInfo, Distance, FieldType, SnapshotInfo,
    SparseVectorParams, VectorParams,
};
use serde_json::{Map, Value, json};

use super::convert::refuse_present;
use super::{Body, Caller, QdrantError, QdrantResult, Shared, Started, run, update_result};

/// `GET /collections`: the names the caller's key may see.
pub(crate) async fn list(state: Shared, started: Started, Caller(caller): Caller) -> Response {
    let listed = run(&state, move |engine| {
        Ok(engine
            .store()
            .list_collections()?
            .into_iter()
            .filter(|name| caller.may_see(name))
            .map(|name| json!({ "name": name }))
            .collect::<Vec<_>>())
    })
    .await;
    answer(started, listed.map(|names| json!({ "collections": names })))
}

pub(crate) fn answer(started: Started, result: QdrantResult<Value>) -> Response {
    match result {
        Ok(value) => started.ok(value),
        Err(err) => err.into_response(),
    }
}

/// `GET /collections/{collection}`: config and counts in Qdrant's `CollectionInfo` shape.
pub(crate) async fn info(state: Shared, started: Started, Path(name): Path<String>) -> Response {
    let info = run(&state, move |engine| {
        Ok(engine.store().collection_info(&name)?)
    })
    .await;
    answer(started, info.map(info_json))
}

/// The engine's own settings (HNSW, optimizers, WAL) are not configurable through this door:
/// the values shown are Qdrant's defaults, which the embedded engine uses.
fn info_json(info: CollectionInfo) -> Value {
    let vectors = match info.config.vectors.get("") {
        Some(params) if info.config.vectors.len() == 1 => params_json(params),
        _ => Value::Object(
            info.config
                .vectors
                .iter()
                .map(|(name, params)| (name.clone(), params_json(params)))
                .collect(),
        ),
    };
    let mut params = json!({
        "vectors": vectors,
        "shard_number": 1,
        "replication_factor": 1,
        "write_consistency_factor": 1,
        "on_disk_payload": true,
    });
    if !info.config.sparse_vectors.is_empty() {
        params["sparse_vectors"] = Value::Object(
            info.config
                .sparse_vectors
                .iter()
                .map(|(name, sparse)| {
                    let mut out = Map::new();
                    if sparse.idf {
                        out.insert("modifier".into(), json!("idf"));
                    }
                    (name.clone(), Value::Object(out))
                })
                .collect(),
        );
    }
    let payload_schema: Map<String, Value> = info
        .payload_indexes
        .iter()
        .map(|(field, kind)| {
            (
                field.clone(),
                json!({ "data_type": kind.to_lowercase(), "points": info.points }),
            )
        })
        .collect();
    json!({
        // Qdrant's yellow means "optimizing now": the embedded store builds its indexes when
        // `mnemo index` asks, never behind the caller's back, so nothing is ever in progress.
        "status": "green",
        "optimizer_status": "ok",
        "indexed_vectors_count": info.indexed_vectors,
        "points_count": info.points,
        "segments_count": info.segments,
        "config": {
            "params": params,
            "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000,
                            "max_indexing_threads": 0, "on_disk": false},
            "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                                 "default_segment_number": 0, "max_segment_size": null,
                                 "memmap_threshold": null, "indexing_threshold": 10000,
                                 "flush_interval_sec": 5, "max_optimization_threads": null},
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            "quantization_config": null,
        },
        "payload_schema": payload_schema,
    })
}

fn params_json(params: &VectorParams) -> Value {
    json!({ "size": params.size, "distance": params.distance.name() })
}

/// `GET /collections/{collection}/exists`.
pub(crate) async fn exists(state: Shared, started: Started, Path(name): Path<String>) -> Response {
    let found = run(&state, move |engine| {
        Ok(engine.store().list_collections()?.contains(&name))
    })
    .await;
    answer(started, found.map(|exists| json!({ "exists": exists })))
}

/// Tuning a client may send, which the embedded engine sets itself: accepted, not applied.
const TUNING: &[&str] = &[
    "hnsw_config",
    "optimizers_config",
    "wal_config",
    "quantization_config",
    "on_disk_payload",
    "shard_number",
    "replication_factor",
    "write_consistency_factor",
    "sharding_method",
    "strict_mode_config",
    "metadata",
    "timeout",
];

/// `PUT /collections/{collection}`: dense vectors (one unnamed or named ones) and sparse
/// vectors (with `modifier: "idf"` for BM25).
pub(crate) async fn create(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let created = async {
        refuse_present(&body, &["init_from"])?;
        let unknown: Vec<&String> = body
            .keys()
            .filter(|key| {
                !TUNING.contains(&key.as_str()) && *key != "vectors" && *key != "sparse_vectors"
            })
            .collect();
        if let Some(key) = unknown.first() {
            return Err(QdrantError::bad(format!(
                "unknown field `{key}` of a collection's creation"
            )));
        }
        let config = read_config(&body)?;
        run(&state, move |engine| {
            engine.create_collection(&name, &config)?;
            Ok(json!(true))
        })
        .await
    }
    .await;
    answer(started, created)
}

fn read_config(body: &Map<String, Value>) -> QdrantResult<CollectionConfig> {
    let mut config = CollectionConfig::default();
    match body.get("vectors") {
        None => {}
        Some(Value::Object(members)) if members.contains_key("size") => {
            let params = read_params(&Value::Object(members.clone()), "vectors")?;
            config.vectors.insert(String::new(), params);
        }
        Some(Value::Object(named)) => {
            for (name, params) in named {
                let params = read_params(params, &format!("vectors.{name}"))?;
                config.vectors.insert(name.clone(), params);
            }
        }
        Some(other) => {
            return Err(QdrantError::bad(format!(
                "vectors: expected {{\"size\", \"distance\"}} or named ones, found {}",
                mnemo_store::json_type(other)
            )));
        }
    }
    if let Some(sparse) = body.get("sparse_vectors") {
        let named = sparse
            .as_object()
            .ok_or_else(|| QdrantError::bad("sparse_vectors: expected named sparse vectors"))?;
        for (name, params) in named {
            let modifier = params.get("modifier").and_then(Value::as_str);
            let idf = match modifier {
                None | Some("none") => false,
                Some("idf") => true,
                Some(other) => {
                    return Err(QdrantError::bad(format!(
                        "sparse_vectors.{name}.modifier: `{other}` is not `idf` or `none`"
                    )));
                }
            };
            config
                .sparse_vectors
                .insert(name.clone(), SparseVectorParams { idf });
        }
    }
    config.validate()?;
    Ok(config)
}

fn read_params(value: &Value, at: &str) -> QdrantResult<VectorParams> {
    let members = value
        .as_object()
        .ok_or_else(|| QdrantError::bad(format!("{at}: expected {{\"size\", \"distance\"}}")))?;
    if let Some(multi) = members.get("multivector_config") {
        return Err(QdrantError::unsupported(format!(
            "{at}.multivector_config ({multi})"
        )));
    }
    if let Some(datatype) = members.get("datatype").and_then(Value::as_str)
        && datatype != "float32"
    {
        return Err(QdrantError::unsupported(format!(
            "{at}.datatype `{datatype}` (vectors are float32)"
        )));
    }
    let size = members
        .get("size")
        .and_then(Value::as_u64)
        .and_then(|size| usize::try_from(size).ok())
        .ok_or_else(|| QdrantError::bad(format!("{at}.size: expected a positive integer")))?;
    let distance = members
        .get("distance")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            QdrantError::bad(format!(
                "{at}.distance: expected Cosine, Dot, Euclid or Manhattan"
            ))
        })?
        .parse::<Distance>()
        .map_err(|err| QdrantError::bad(format!("{at}.distance: {err}")))?;
    Ok(VectorParams { size, distance })
}

/// `PATCH /collections/{collection}`: tuning is accepted (the engine sets its own); a change
/// of the vectors' sizes or distances is refused, as Qdrant refuses it.
pub(crate) async fn update(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let updated = async {
        if body.contains_key("vectors") || body.contains_key("sparse_vectors") {
            return Err(QdrantError::unsupported(
                "changing a collection's vectors (create a new collection and move the points)",
            ));
        }
        if let Some(key) = body.keys().find(|key| !TUNING.contains(&key.as_str())) {
            return Err(QdrantError::bad(format!(
                "unknown field `{key}` of a collection's update"
            )));
        }
        run(&state, move |engine| {
            engine.store().collection_config(&name)?;
            Ok(json!(true))
        })
        .await
    }
    .await;
    answer(started, updated)
}

/// `DELETE /collections/{collection}`: `true` when there was one.
pub(crate) async fn delete(state: Shared, started: Started, Path(name): Path<String>) -> Response {
    let deleted = run(&state, move |engine| {
        Ok(json!(engine.delete_collection(&name)?))
    })
    .await;
    answer(started, deleted)
}

/// `POST /collections/aliases`: create, delete and rename actions applied together.
pub(crate) async fn change_aliases(
    state: Shared,
    started: Started,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let changed = async {
        let actions = body
            .get("actions")
            .and_then(Value::as_array)
            .ok_or_else(|| QdrantError::bad("`actions`: expected a list of alias actions"))?;
        let mut changes = Vec::with_capacity(actions.len());
        for (index, action) in actions.iter().enumerate() {
            changes.push(read_alias_action(action, index)?);
        }
        run(&state, move |engine| {
            engine.registry().change_aliases(&changes)?;
            Ok(json!(true))
        })
        .await
    }
    .await;
    answer(started, changed)
}

fn read_alias_action(action: &Value, index: usize) -> QdrantResult<AliasChange> {
    let field = |value: &Value, key: &str, kind: &str| -> QdrantResult<String> {
        value
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                QdrantError::bad(format!("actions[{index}].{kind}.{key}: expected a name"))
            })
    };
    if let Some(create) = action.get("create_alias") {
        return Ok(AliasChange::Create {
            alias: field(create, "alias_name", "create_alias")?,
            collection: field(create, "collection_name", "create_alias")?,
        });
    }
    if let Some(delete) = action.get("delete_alias") {
        return Ok(AliasChange::Delete {
            alias: field(delete, "alias_name", "delete_alias")?,
        });
    }
    if let Some(rename) = action.get("rename_alias") {
        return Ok(AliasChange::Rename {
            from: field(rename, "old_alias_name", "rename_alias")?,
            to: field(rename, "new_alias_name", "rename_alias")?,
        });
    }
    Err(QdrantError::bad(format!(
        "actions[{index}]: expected `create_alias`, `delete_alias` or `rename_alias`"
    )))
}

/// `GET /aliases`: the aliases of the collections the caller's key may see.
pub(crate) async fn all_aliases(
    state: Shared,
    started: Started,
    Caller(caller): Caller,
) -> Response {
    let aliases = run(&state, move |engine| {
        Ok(aliases_json(engine, |alias| {
            caller.may_see(&alias.collection) && caller.may_see(&alias.alias)
        }))
    })
    .await;
    answer(started, aliases)
}

/// `GET /collections/{collection}/aliases`.
pub(crate) async fn collection_aliases(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
) -> Response {
    let aliases = run(&state, move |engine| {
        let collection = engine.registry().resolve(&name);
        if !engine
            .registry()
            .inner()
            .list_collections()?
            .contains(&collection)
        {
            return Err(mnemo_store::StoreError::UnknownCollection(name).into());
        }
        Ok(aliases_json(engine, |alias| alias.collection == collection))
    })
    .await;
    answer(started, aliases)
}

fn aliases_json(
    engine: &mnemo_engine::Engine,
    keep: impl Fn(&mnemo_store::Alias) -> bool,
) -> Value {
    let aliases: Vec<Value> = engine
        .registry()
        .aliases()
        .into_iter()
        .filter(|alias| keep(alias))
        .map(|alias| json!({ "alias_name": alias.alias, "collection_name": alias.collection }))
        .collect();
    json!({ "aliases": aliases })
}

/// `PUT /collections/{collection}/index`: `{"field_name", "field_schema"}`, the schema a type
/// name or `{"type", ...}`.
pub(crate) async fn create_index(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let created = async {
        let field = body
            .get("field_name")
            .and_then(Value::as_str)
            .ok_or_else(|| QdrantError::bad("`field_name`: expected the payload field to index"))?
            .to_owned();
        let schema = match body.get("field_schema") {
            Some(Value::String(kind)) => kind.clone(),
            Some(Value::Object(params)) => params
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => {
                return Err(QdrantError::bad(
                    "`field_schema`: expected a type (keyword, integer, float, bool, datetime, uuid, text)",
                ));
            }
        };
        let field_type = match schema.as_str() {
            "keyword" => FieldType::Keyword,
            "integer" => FieldType::Integer,
            "float" => FieldType::Float,
            "bool" => FieldType::Bool,
            "datetime" => FieldType::Datetime,
            "uuid" => FieldType::Uuid,
            "text" => FieldType::Text,
            "geo" => return Err(QdrantError::unsupported("a `geo` payload index")),
            other => {
                return Err(QdrantError::bad(format!(
                    "`field_schema`: unknown type `{other}` (keyword, integer, float, bool, datetime, uuid, text)"
                )));
            }
        };
        run(&state, move |engine| {
            engine
                .store()
                .create_payload_index(&name, &field, field_type)?;
            Ok(update_result())
        })
        .await
    }
    .await;
    answer(started, created)
}

/// `DELETE /collections/{collection}/index/{field}`: the embedded engine keeps its indexes.
pub(crate) async fn delete_index() -> QdrantError {
    QdrantError::unsupported("deleting a payload index")
}

fn snapshot_json(info: &SnapshotInfo) -> Value {
    // Qdrant writes its times without a zone, in UTC.
    let creation_time = info.created.trim_end_matches('Z').to_owned();
    json!({
        "name": info.name,
        "creation_time": creation_time,
        "size": info.size,
        "checksum": info.checksum,
    })
}

/// `POST /collections/{collection}/snapshots`.
pub(crate) async fn create_snapshot(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
) -> Response {
    let created = run(&state, move |engine| {
        Ok(snapshot_json(&engine.create_snapshot(&name)?))
    })
    .await;
    answer(started, created)
}

/// `GET /collections/{collection}/snapshots`.
pub(crate) async fn list_snapshots(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
) -> Response {
    let listed = run(&state, move |engine| {
        engine.store().collection_config(&name)?;
        let snapshots = engine.store().list_snapshots(&name)?;
        Ok(Value::Array(snapshots.iter().map(snapshot_json).collect()))
    })
    .await;
    answer(started, listed)
}

/// `GET /collections/{collection}/snapshots/{snapshot}`: the file.
pub(crate) async fn download_snapshot(
    state: Shared,
    Path((name, snapshot)): Path<(String, String)>,
) -> Response {
    let file = run(&state, move |engine| {
        Ok(engine.store().snapshot_file(&name, &snapshot)?)
    })
    .await;
    match file {
        Ok((path, info)) => match crate::api::snapshots::send_snapshot(&path, info) {
            Ok(response) => response,
            Err(err) => QdrantError::from(err).into_response(),
        },
        Err(err) => err.into_response(),
    }
}

/// `DELETE /collections/{collection}/snapshots/{snapshot}`.
pub(crate) async fn delete_snapshot(
    state: Shared,
    started: Started,
    Path((name, snapshot)): Path<(String, String)>,
) -> Response {
    let deleted = run(&state, move |engine| {
        if engine.delete_snapshot(&name, &snapshot)? {
            Ok(json!(true))
        } else {
            Err(QdrantError::new(
                StatusCode::NOT_FOUND,
                format!("Not found: collection `{name}` has no snapshot `{snapshot}`"),
            ))
        }
    })
    .await;
    answer(started, deleted)
}
