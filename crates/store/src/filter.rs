//! Payload filters in Qdrant's JSON filter shape, so that a filter written for a Qdrant
//! server (`{"must": [{"key": "status", "match": {"value": "open"}}]}`) means the same here,
//! whichever backend answers it.

use serde::{Deserialize, Serialize};

use crate::PointId;
use crate::error::StoreError;

/// How deep filters nest at most (a filter inside `must`, `should`, `must_not` or `nested`
/// counts one level), whichever door they come through: deep enough for any filter a person
/// or a program writes, and a bound on the work and recursion of every backend that reads one.
pub const MAX_FILTER_DEPTH: usize = 64;

/// Points match when every `must` condition holds, at least one `should` holds (if any are
/// given), and no `must_not` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub should: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_not: Vec<Condition>,
}

impl Filter {
    pub fn must(conditions: impl IntoIterator<Item = Condition>) -> Self {
        Self {
            must: conditions.into_iter().collect(),
            ..Self::default()
        }
    }

    pub fn should(conditions: impl IntoIterator<Item = Condition>) -> Self {
        Self {
            should: conditions.into_iter().collect(),
            ..Self::default()
        }
    }

    pub fn must_not(conditions: impl IntoIterator<Item = Condition>) -> Self {
        Self {
            must_not: conditions.into_iter().collect(),
            ..Self::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.should.is_empty() && self.must_not.is_empty()
    }

    /// Levels of nesting, this filter being the first; counted without recursion.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut pending = vec![(self, 1)];
        while let Some((filter, depth)) = pending.pop() {
            deepest = deepest.max(depth);
            for condition in filter
                .must
                .iter()
                .chain(&filter.should)
                .chain(&filter.must_not)
            {
                match condition {
                    Condition::Filter(inner) => pending.push((inner, depth + 1)),
                    Condition::Nested { nested } => pending.push((&nested.filter, depth + 1)),
                    _ => {}
                }
            }
        }
        deepest
    }

    /// `BadFilter`, naming the limit, when the filter nests deeper than [`MAX_FILTER_DEPTH`].
    pub fn check_depth(&self) -> Result<(), StoreError> {
        let depth = self.depth();
        if depth > MAX_FILTER_DEPTH {
            return Err(StoreError::BadFilter(format!(
                "the filter nests {depth} levels deep; at most {MAX_FILTER_DEPTH} are read"
            )));
        }
        Ok(())
    }

    /// Both filters must hold.
    pub fn and(self, other: Filter) -> Filter {
        if self.is_empty() {
            return other;
        }
        if other.is_empty() {
            return self;
        }
        Filter::must([Condition::Filter(self), Condition::Filter(other)])
    }
}

/// One condition. A key is a payload path: `a.b` for nested objects, `a[].b` for objects
/// inside arrays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Condition {
    Field(FieldCondition),
    IsNull {
        is_null: KeyRef,
    },
    IsEmpty {
        is_empty: KeyRef,
    },
    HasId {
        has_id: Vec<PointId>,
    },
    Nested {
        nested: NestedCondition,
    },
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    Filter(Filter),
}

impl Condition {
    pub fn matches(key: &str, value: impl Into<MatchValue>) -> Self {
        Self::Field(FieldCondition::with_match(
            key,
            Match::Value {
                value: value.into(),
            },
        ))
    }

    pub fn any(key: &str, values: impl IntoIterator<Item = MatchValue>) -> Self {
        Self::Field(FieldCondition::with_match(
            key,
            Match::Any {
                any: values.into_iter().collect(),
            },
        ))
    }

    pub fn except(key: &str, values: impl IntoIterator<Item = MatchValue>) -> Self {
        Self::Field(FieldCondition::with_match(
            key,
            Match::Except {
                except: values.into_iter().collect(),
            },
        ))
    }

    /// Full-text match: needs a `text` payload index on the key.
    pub fn text(key: &str, text: &str) -> Self {
        Self::Field(FieldCondition::with_match(
            key,
            Match::Text {
                text: text.to_owned(),
            },
        ))
    }

    pub fn range(key: &str, range: Range) -> Self {
        Self::Field(FieldCondition {
            key: key.to_owned(),
            r#match: None,
            range: Some(range),
        })
    }

    pub fn is_null(key: &str) -> Self {
        Self::IsNull {
            is_null: KeyRef {
                key: key.to_owned(),
            },
        }
    }

    pub fn is_empty(key: &str) -> Self {
        Self::IsEmpty {
            is_empty: KeyRef {
                key: key.to_owned(),
            },
        }
    }

    pub fn has_id(ids: impl IntoIterator<Item = PointId>) -> Self {
        Self::HasId {
            has_id: ids.into_iter().collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldCondition {
    pub key: String,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<Match>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
}

impl FieldCondition {
    fn with_match(key: &str, r#match: Match) -> Self {
        Self {
            key: key.to_owned(),
            r#match: Some(r#match),
            range: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyRef {
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NestedCondition {
    pub key: String,
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub filter: Filter,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Match {
    Value { value: MatchValue },
    Any { any: Vec<MatchValue> },
    Except { except: Vec<MatchValue> },
    Text { text: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MatchValue {
    Bool(bool),
    Integer(i64),
    Keyword(String),
}

impl From<&str> for MatchValue {
    fn from(s: &str) -> Self {
        Self::Keyword(s.to_owned())
    }
}

impl From<String> for MatchValue {
    fn from(s: String) -> Self {
        Self::Keyword(s)
    }
}

impl From<i64> for MatchValue {
    fn from(n: i64) -> Self {
        Self::Integer(n)
    }
}

impl From<bool> for MatchValue {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

/// Bounds on a numeric field; absent bounds are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Range {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_qdrant_rest_filters() {
        let json = serde_json::json!({
            "must": [
                {"key": "status", "match": {"value": "open"}},
                {"key": "priority", "range": {"lte": 1.0}},
                {"is_null": {"key": "owner"}},
                {"nested": {"key": "meta", "filter": {"must": [{"key": "x", "match": {"any": ["a", "b"]}}]}}},
                {"should": [{"has_id": [7, "550e8400-e29b-41d4-a716-446655440000"]}]}
            ],
            "must_not": [{"key": "mvp", "match": {"value": true}}]
        });
        let filter: Filter = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(filter.must.len(), 5);
        assert!(matches!(filter.must[2], Condition::IsNull { .. }));
        assert!(matches!(filter.must[4], Condition::Filter(_)));
        assert_eq!(serde_json::to_value(&filter).unwrap(), json);
    }

    #[test]
    fn refuses_unknown_shapes() {
        let err = serde_json::from_value::<Filter>(serde_json::json!({"must": [{"kee": "x"}]}));
        assert!(err.is_err());
    }

    #[test]
    fn depth_counts_filters_and_nested_conditions_and_is_bounded() {
        let leaf = Filter::must([Condition::matches("status", "open")]);
        assert_eq!(leaf.depth(), 1);
        let mut filter = leaf.clone();
        for level in 2..=MAX_FILTER_DEPTH {
            filter = if level % 2 == 0 {
                Filter::should([Condition::Filter(filter)])
            } else {
                Filter::must_not([Condition::Nested {
                    nested: NestedCondition {
                        key: "items[]".into(),
                        filter,
                    },
                }])
            };
        }
        assert_eq!(filter.depth(), MAX_FILTER_DEPTH);
        assert!(filter.check_depth().is_ok());
        let deeper = Filter::must([Condition::Filter(filter), Condition::Filter(leaf)]);
        let err = deeper.check_depth().unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "{} levels deep; at most {MAX_FILTER_DEPTH}",
                MAX_FILTER_DEPTH + 1
            )),
            "{err}"
        );
    }
}
