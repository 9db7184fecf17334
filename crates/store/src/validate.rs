//! Checks a batch before any of it is written, so that a bad point refuses the whole batch and
//! the error names it by its index. Every backend runs the same checks.

use std::collections::HashSet;

use serde_json::Value;

use crate::error::{Result, StoreError};
use crate::model::{CollectionConfig, Distance, NearestQuery, Point, Vector};

/// Checks every point of `points` against `config`; then keeps, of points sharing an id, only
/// the last (Qdrant applies a batch in order, so the last write wins: we make it explicit and
/// count the dropped ones).
pub(crate) fn prepare_batch(
    config: &CollectionConfig,
    points: Vec<Point>,
) -> Result<(Vec<Point>, usize)> {
    for (index, point) in points.iter().enumerate() {
        check_point(config, index, point)?;
    }
    let mut seen = HashSet::with_capacity(points.len());
    let total = points.len();
    let mut kept: Vec<Point> = points
        .into_iter()
        .rev()
        .filter(|point| seen.insert(point.id))
        .collect();
    kept.reverse();
    let replaced = total - kept.len();
    Ok((kept, replaced))
}

fn check_point(config: &CollectionConfig, index: usize, point: &Point) -> Result<()> {
    let id = point.id;
    match &point.payload {
        Value::Object(_) | Value::Null => {}
        other => {
            return Err(StoreError::PayloadNotObject {
                index,
                id,
                found: json_type(other),
            });
        }
    }
    // As in Qdrant, a point may leave out some of the named vectors (searches by a vector it
    // lacks never return it), but a point with none of them could never be found.
    if !config.vectors.is_empty() && !config.vectors.keys().any(|n| point.vectors.contains_key(n)) {
        return Err(StoreError::MissingVector {
            index,
            id,
            names: config
                .vectors
                .keys()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    for (name, vector) in &point.vectors {
        if let Some(params) = config.vectors.get(name) {
            let Vector::Dense(values) = vector else {
                return Err(StoreError::WrongVectorKind {
                    index,
                    id,
                    name: name.clone(),
                    expected: "dense",
                    found: vector.kind(),
                });
            };
            if values.len() != params.size {
                return Err(StoreError::WrongDimension {
                    index,
                    id,
                    name: name.clone(),
                    expected: params.size,
                    found: values.len(),
                });
            }
            check_finite(index, point, name, values)?;
            if params.distance == Distance::Cosine && values.iter().all(|v| *v == 0.0) {
                return Err(StoreError::ZeroVector {
                    index,
                    id,
                    name: name.clone(),
                });
            }
        } else if config.sparse_vectors.contains_key(name) {
            let Vector::Sparse(sparse) = vector else {
                return Err(StoreError::WrongVectorKind {
                    index,
                    id,
                    name: name.clone(),
                    expected: "sparse",
                    found: vector.kind(),
                });
            };
            let bad = |reason: String| StoreError::BadSparseVector {
                index,
                id,
                name: name.clone(),
                reason,
            };
            if sparse.indices.len() != sparse.values.len() {
                return Err(bad(format!(
                    "{} indices but {} values",
                    sparse.indices.len(),
                    sparse.values.len()
                )));
            }
            let mut seen = HashSet::with_capacity(sparse.indices.len());
            if let Some(dup) = sparse.indices.iter().find(|i| !seen.insert(**i)) {
                return Err(bad(format!("index {dup} appears twice")));
            }
            check_finite(index, point, name, &sparse.values)?;
        } else {
            let known = known_vectors(config);
            return Err(StoreError::UnknownVector {
                index,
                id,
                name: name.clone(),
                known,
            });
        }
    }
    Ok(())
}

fn check_finite(index: usize, point: &Point, name: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(position) => Err(StoreError::NonFiniteValue {
            index,
            id: point.id,
            name: name.to_owned(),
            position,
            value: values[position],
        }),
        None => Ok(()),
    }
}

/// A JSON value's type, as error messages name it (`found a string`).
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Collection names become directory names: keep them portable and unsurprising.
pub(crate) fn check_collection_name(name: &str) -> Result<()> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !name.starts_with(['-', '_']);
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidCollectionName(name.to_owned()))
    }
}

/// The collection's vector names, for messages.
pub(crate) fn check_query(
    config: &CollectionConfig,
    index: usize,
    query: &NearestQuery,
) -> Result<()> {
    let bad = |reason: String| StoreError::BadQuery { index, reason };
    match (
        &query.vector,
        config.vectors.get(&query.using),
        config.sparse_vectors.get(&query.using),
    ) {
        (Vector::Dense(values), Some(params), _) => {
            if values.len() != params.size {
                return Err(bad(format!(
                    "the query vector has {} dimensions, `{}` has {}",
                    values.len(),
                    query.using,
                    params.size
                )));
            }
            if values.iter().any(|v| !v.is_finite()) {
                return Err(bad("the query vector holds a non-finite value".into()));
            }
            Ok(())
        }
        (Vector::Sparse(sparse), _, Some(_)) => {
            if sparse.indices.len() != sparse.values.len()
                || sparse.values.iter().any(|v| !v.is_finite())
            {
                return Err(bad("the sparse query vector is malformed".into()));
            }
            Ok(())
        }
        _ => Err(bad(format!(
            "the collection has no {} vector named `{}`",
            query.vector.kind(),
            query.using
        ))),
    }
}

pub(crate) fn known_vectors(config: &CollectionConfig) -> String {
    config
        .vectors
        .keys()
        .chain(config.sparse_vectors.keys())
        .map(|n| {
            if n.is_empty() {
                "\"\" (default)".to_owned()
            } else {
                format!("`{n}`")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Vectors asked for by name must exist: the engine would answer with an internal error.
pub(crate) fn check_vector_selection(
    config: &CollectionConfig,
    selection: &crate::VectorSelection,
) -> Result<()> {
    if let crate::VectorSelection::Names(names) = selection
        && let Some(name) = names.iter().find(|name| {
            !config.vectors.contains_key(*name) && !config.sparse_vectors.contains_key(*name)
        })
    {
        return Err(StoreError::NoSuchVector {
            name: name.clone(),
            known: known_vectors(config),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{PointId, SparseVector};

    fn config() -> CollectionConfig {
        CollectionConfig::default()
            .with_vector("dense", 3, Distance::Cosine)
            .with_sparse_vector("bm25", true)
    }

    fn point(id: u64, dense: Vec<f32>) -> Point {
        Point {
            id: PointId::Num(id),
            vectors: BTreeMap::from([("dense".to_owned(), Vector::Dense(dense))]),
            payload: serde_json::json!({"n": id}),
        }
    }

    #[test]
    fn names_the_first_bad_point_by_index() {
        let points = vec![
            point(1, vec![1.0, 0.0, 0.0]),
            point(2, vec![1.0, f32::NAN, 0.0]),
        ];
        let err = prepare_batch(&config(), points).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NonFiniteValue {
                    index: 1,
                    position: 1,
                    ..
                }
            ),
            "{err}"
        );
        let err = prepare_batch(&config(), vec![point(1, vec![0.0; 3])]).unwrap_err();
        assert!(
            matches!(err, StoreError::ZeroVector { index: 0, .. }),
            "{err}"
        );
        let err = prepare_batch(&config(), vec![point(1, vec![1.0; 4])]).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::WrongDimension {
                    expected: 3,
                    found: 4,
                    ..
                }
            ),
            "{err}"
        );
        let mut sparse = point(9, vec![1.0; 3]);
        sparse.vectors.insert(
            "bm25".into(),
            Vector::Sparse(SparseVector {
                indices: vec![4, 4],
                values: vec![1.0, 2.0],
            }),
        );
        let err = prepare_batch(&config(), vec![sparse]).unwrap_err();
        assert!(err.to_string().contains("index 4 appears twice"), "{err}");
        let mut array = point(3, vec![1.0; 3]);
        array.payload = serde_json::json!([1]);
        let err = prepare_batch(&config(), vec![array]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "point 0 (id 3): the payload must be a JSON object, found an array"
        );
    }

    #[test]
    fn the_last_of_duplicate_ids_wins() {
        let mut last = point(1, vec![0.0, 1.0, 0.0]);
        last.payload = serde_json::json!({"n": "last"});
        let (kept, replaced) = prepare_batch(
            &config(),
            vec![point(1, vec![1.0; 3]), point(2, vec![1.0; 3]), last.clone()],
        )
        .unwrap();
        assert_eq!(replaced, 1);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[1], last);
    }
}
