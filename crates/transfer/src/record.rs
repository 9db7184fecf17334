//! One record of any import format, as read: an id as the file wrote it, vectors, a payload,
//! and the text to embed with `--reembed`; and the reading of a JSON record into it.

use std::collections::BTreeMap;
use std::fmt;

use mnemo_store::{PointId, SparseVector, json_type as value_type};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// An id as a file holds it. Ids that are not Qdrant ids (`1.2.3`, `task-7`) get a stable
/// UUID derived from them; the original is kept in the payload under `legacy_id`.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceId {
    Num(u64),
    Text(String),
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Num(n) => write!(f, "{n}"),
            Self::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// The payload field that keeps an id mnemo had to replace.
pub const LEGACY_ID_FIELD: &str = "legacy_id";

impl SourceId {
    /// The point id, and whether it was derived (the original must then be kept).
    pub fn point_id(&self) -> (PointId, bool) {
        match self {
            Self::Num(n) => (PointId::Num(*n), false),
            Self::Text(text) => match text.parse::<PointId>() {
                Ok(id) => (id, false),
                Err(_) => {
                    let hash = blake3::hash(format!("mnemo-import\0{text}").as_bytes());
                    let mut bytes = [0u8; 16];
                    bytes.copy_from_slice(&hash.as_bytes()[..16]);
                    (
                        PointId::Uuid(uuid::Builder::from_custom_bytes(bytes).into_uuid()),
                        true,
                    )
                }
            },
        }
    }
}

/// A vector as read, before its name is resolved against a collection. `""`: the file did not
/// name it.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceVector {
    Dense(Vec<f32>),
    Sparse(SparseVector),
}

/// One record: where it was, and what it holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceRecord {
    pub id: Option<SourceId>,
    pub vectors: BTreeMap<String, SourceVector>,
    pub payload: Map<String, Value>,
    /// What `--reembed` embeds.
    pub text: Option<String>,
    /// The member the vectors came from (`Vector`, `vector`, `vectors`), for messages.
    pub vector_key: String,
}

/// A record that cannot be imported: which field, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordFault {
    pub field: String,
    pub message: String,
}

impl RecordFault {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The JSON type of the value starting at `text`, for messages.
fn json_type_at(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        Some(b'N') => "NaN",
        Some(b'I') => "Infinity",
        _ => "not a number",
    }
}

/// Parses a JSON array of numbers into `f32`s: correctly rounded from the decimal text (so a
/// number written from an `f32` by the shortest round-trip form reads back bit-exact), with the
/// element's index and type on error. One pass over the bytes; faster than serde_json for
/// long vectors.
pub fn parse_float_array(raw: &str) -> Result<Vec<f32>, String> {
    let bytes = raw.as_bytes();
    let skip_ws = |mut at: usize| {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        at
    };
    let mut at = skip_ws(0);
    if bytes.get(at) != Some(&b'[') {
        return Err(format!("is {}, not a list of numbers", json_type_at(raw)));
    }
    at = skip_ws(at + 1);
    let mut values = Vec::with_capacity(raw.len() / 8);
    if bytes.get(at) == Some(&b']') {
        return Ok(values);
    }
    loop {
        let index = values.len();
        let start = at;
        let numeric = bytes
            .get(at)
            .is_some_and(|b| *b == b'-' || b.is_ascii_digit());
        if !numeric {
            let found = match bytes.get(at) {
                None | Some(b',' | b']') => "missing",
                Some(_) => json_type_at(&raw[at..]),
            };
            return Err(format!("element {index} is {found}, not a number"));
        }
        while at < bytes.len()
            && matches!(bytes[at], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        {
            at += 1;
        }
        let token = &raw[start..at];
        let value: f32 = token
            .parse()
            .map_err(|_| format!("element {index} (`{token}`) is not a number"))?;
        if !value.is_finite() {
            return Err(format!(
                "element {index} (`{token}`) is beyond the range of 32-bit floats"
            ));
        }
        values.push(value);
        at = skip_ws(at);
        match bytes.get(at) {
            Some(b',') => at = skip_ws(at + 1),
            Some(b']') if skip_ws(at + 1) == bytes.len() => return Ok(values),
            _ => {
                let rest: String = raw[at..].chars().take(12).collect();
                return Err(format!(
                    "element {index} (`{token}`) is followed by `{rest}`, not `,` or `]`"
                ));
            }
        }
    }
}

fn parse_sparse(raw: &str) -> Result<SparseVector, String> {
    #[derive(serde::Deserialize)]
    struct Sparse<'a> {
        #[serde(borrow)]
        indices: &'a RawValue,
        #[serde(borrow)]
        values: &'a RawValue,
    }
    let sparse: Sparse =
        serde_json::from_str(raw).map_err(|e| format!("is not a sparse vector: {e}"))?;
    let indices: Vec<u32> = serde_json::from_str(sparse.indices.get())
        .map_err(|e| format!("has bad `indices`: {e}"))?;
    let values = parse_float_array(sparse.values.get()).map_err(|e| format!("`values`: {e}"))?;
    if indices.len() != values.len() {
        return Err(format!(
            "has {} indices but {} values",
            indices.len(),
            values.len()
        ));
    }
    Ok(SparseVector { indices, values })
}

/// A vector value: a list of numbers, or a sparse `{indices, values}`.
fn parse_vector(raw: &str) -> Result<SourceVector, String> {
    if raw.trim_start().starts_with('{') {
        parse_sparse(raw).map(SourceVector::Sparse)
    } else {
        parse_float_array(raw).map(SourceVector::Dense)
    }
}

/// The fields of a JSON record, its vectors kept as raw text for `parse_float_array`.
struct RawRecord<'a> {
    fields: Vec<(String, Value)>,
    vectors: Vec<(String, &'a RawValue)>,
}

/// Member names that hold one vector, in the formats mnemo reads.
pub const VECTOR_KEYS: [&str; 3] = ["vector", "Vector", "embedding"];

impl<'de> serde::Deserialize<'de> for RawRecord<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RecordVisitor;
        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = RawRecord<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a record (a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut record = RawRecord {
                    fields: Vec::new(),
                    vectors: Vec::new(),
                };
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if VECTOR_KEYS.contains(&key.as_ref()) || key == "vectors" {
                        record
                            .vectors
                            .push((key.into_owned(), map.next_value::<&'de RawValue>()?));
                    } else {
                        let value = map.next_value::<Value>()?;
                        record.fields.push((key.into_owned(), value));
                    }
                }
                Ok(record)
            }
        }
        deserializer.deserialize_map(RecordVisitor)
    }
}

/// `TaskId` → `task_id`: the legacy PowerShell file's names in the payload's style.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for ch in name.chars() {
        if ch.is_uppercase() {
            if previous_lower {
                out.push('_');
            }
            out.extend(ch.to_lowercase());
            previous_lower = false;
        } else {
            out.push(ch);
            previous_lower = ch.is_lowercase() || ch.is_ascii_digit();
        }
    }
    out
}

/// Fields whose text `--reembed` embeds, in order of preference.
const TEXT_FIELDS: [&str; 5] = ["text", "description", "content", "title", "document"];

/// Reads one JSON record of any of the JSON formats:
/// - Qdrant's and mnemo's: `{"id", "vector" | "vectors", "payload"}`;
/// - the Go migrator's: `{"id", "vector", "metadata", "source"}` (metadata's members and
///   `source` become the payload);
/// - the PowerShell vectoriser's: `{"TaskId", "Description", ..., "Vector", "Metadata"}`
///   (members in snake_case, `Metadata`'s too).
pub fn read_json_record(bytes: &[u8]) -> Result<SourceRecord, RecordFault> {
    let raw: RawRecord = serde_json::from_slice(bytes).map_err(|e| {
        let message = e.to_string();
        // A bare NaN is not JSON; say so rather than "expected value".
        let near = std::str::from_utf8(bytes).ok().and_then(|text| {
            let line = text.lines().nth(e.line().saturating_sub(1))?;
            line.get(e.column().saturating_sub(1)..)
        });
        match near {
            Some(rest) if rest.starts_with("NaN") || rest.starts_with("Infinity") => {
                RecordFault::new(
                    "",
                    "holds a bare NaN or Infinity, which is not a number a vector may hold",
                )
            }
            _ => RecordFault::new("", format!("is not a valid JSON object: {message}")),
        }
    })?;
    let vectors = raw
        .vectors
        .into_iter()
        .map(|(key, raw)| (key, VectorInput::Raw(raw)))
        .collect();
    assemble(raw.fields, vectors)
}

/// A record's vector as its format gives it: JSON text still to read, or numbers already read.
pub enum VectorInput<'a> {
    Raw(&'a RawValue),
    Read(SourceVector),
}

/// Builds a record from its members, whatever the format: ids, payload, text and vectors are
/// found by the same names in JSON and in pickles.
pub fn assemble(
    fields: Vec<(String, Value)>,
    vectors: Vec<(String, VectorInput<'_>)>,
) -> Result<SourceRecord, RecordFault> {
    let mut record = SourceRecord::default();
    let mut payload = Map::new();
    let mut explicit_payload = None;
    for (key, value) in fields {
        match key.as_str() {
            "id" | "TaskId" | "task_id" if record.id.is_none() => {
                record.id = Some(match &value {
                    Value::Number(n) => match n.as_u64() {
                        Some(n) => SourceId::Num(n),
                        None => {
                            return Err(RecordFault::new(
                                &key,
                                format!("is {n}: a numeric id must be a non-negative integer"),
                            ));
                        }
                    },
                    Value::String(s) if !s.trim().is_empty() => SourceId::Text(s.clone()),
                    other => {
                        return Err(RecordFault::new(
                            &key,
                            format!("is {}, not a string or an integer", value_type(other)),
                        ));
                    }
                });
                if key == "TaskId" {
                    payload.insert("task_id".into(), value);
                }
            }
            "payload" => match value {
                Value::Object(map) => explicit_payload = Some(map),
                Value::Null => explicit_payload = Some(Map::new()),
                other => {
                    return Err(RecordFault::new(
                        "payload",
                        format!("is {}, not an object", value_type(&other)),
                    ));
                }
            },
            "metadata" | "Metadata" => match value {
                Value::Object(map) => {
                    for (inner, value) in map {
                        payload.insert(snake_case(&inner), value);
                    }
                }
                Value::Null => {}
                other => {
                    return Err(RecordFault::new(
                        &key,
                        format!("is {}, not an object", value_type(&other)),
                    ));
                }
            },
            _ => {
                payload.insert(snake_case(&key), value);
            }
        }
    }
    if let Some(explicit) = explicit_payload {
        // Qdrant's shape: the payload is what it says, other members are not data.
        payload = explicit;
    }
    // The legacy files name the model per task; mnemo's payloads call it `model`.
    if !payload.contains_key("model")
        && let Some(model) = payload.remove("vector_model")
    {
        payload.insert("model".into(), model);
    }
    record.text = TEXT_FIELDS.iter().find_map(|field| {
        payload
            .get(*field)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    });
    for (key, input) in vectors {
        record.vector_key = key.clone();
        let raw_vector = match input {
            VectorInput::Read(vector) => {
                record.vectors.insert(String::new(), vector);
                continue;
            }
            VectorInput::Raw(raw) => raw,
        };
        let text = raw_vector.get();
        if !text.trim_start().starts_with('{') {
            let vector = parse_vector(text).map_err(|message| RecordFault::new(&key, message))?;
            record.vectors.insert(String::new(), vector);
            continue;
        }
        let named: BTreeMap<String, &RawValue> = serde_json::from_str(text).map_err(|e| {
            RecordFault::new(&key, format!("is not an object of named vectors: {e}"))
        })?;
        let unnamed_sparse = named.len() == 2
            && named.contains_key("indices")
            && named.contains_key("values")
            && key != "vectors";
        if unnamed_sparse {
            let vector = parse_vector(text).map_err(|message| RecordFault::new(&key, message))?;
            record.vectors.insert(String::new(), vector);
            continue;
        }
        for (name, raw) in named {
            let vector = parse_vector(raw.get())
                .map_err(|message| RecordFault::new(format!("{key}.{name}"), message))?;
            record.vectors.insert(name, vector);
        }
    }
    record.payload = payload;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_bit_exact_and_faults_name_the_element() {
        let values = [0.1f32, -3.4028235e38, 1e-45, 0.0, -0.0, 0.123_456_79];
        let text = serde_json::to_string(&values).unwrap();
        let read = parse_float_array(&text).unwrap();
        assert_eq!(
            read.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(
            parse_float_array("[1, \"2\", 3]").unwrap_err(),
            "element 1 is a string, not a number"
        );
        assert_eq!(
            parse_float_array("[1, null]").unwrap_err(),
            "element 1 is null, not a number"
        );
        assert!(
            parse_float_array("[1, 1e40]")
                .unwrap_err()
                .contains("range")
        );
        assert!(parse_float_array("[1, [2]]").unwrap_err().contains("array"));
        assert!(parse_float_array("{}").unwrap_err().contains("object"));
        assert_eq!(parse_float_array("[ ]").unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn reads_the_three_legacy_shapes() {
        let powershell = br#"{"TaskId": "1.2.3", "Description": "Migrer", "IndentLevel": 2,
            "Vector": [0.5, 0.25], "Metadata": {"VectorModel": "ada", "VectorDimension": 2}}"#;
        let record = read_json_record(powershell).unwrap();
        assert_eq!(record.id, Some(SourceId::Text("1.2.3".into())));
        assert_eq!(record.payload["task_id"], "1.2.3");
        assert_eq!(record.payload["indent_level"], 2);
        assert_eq!(record.payload["model"], "ada");
        assert_eq!(record.text.as_deref(), Some("Migrer"));
        assert_eq!(record.vectors[""], SourceVector::Dense(vec![0.5, 0.25]));

        let go =
            br#"{"id": "t-1", "vector": [1, 2], "metadata": {"status": "done"}, "source": "a.md"}"#;
        let record = read_json_record(go).unwrap();
        assert_eq!(record.payload["status"], "done");
        assert_eq!(record.payload["source"], "a.md");

        let qdrant = br#"{"id": 7, "vector": {"dense": [1, 2], "bm25": {"indices": [3], "values": [0.5]}}, "payload": {"a": 1}}"#;
        let record = read_json_record(qdrant).unwrap();
        assert_eq!(record.id, Some(SourceId::Num(7)));
        assert_eq!(
            record.payload,
            serde_json::json!({"a": 1}).as_object().unwrap().clone()
        );
        assert!(matches!(record.vectors["bm25"], SourceVector::Sparse(_)));
        assert_eq!(record.vectors["dense"], SourceVector::Dense(vec![1.0, 2.0]));
    }

    #[test]
    fn derived_ids_are_stable_and_real_ids_kept() {
        let (a, derived) = SourceId::Text("1.2.3".into()).point_id();
        assert!(derived);
        assert_eq!(a, SourceId::Text("1.2.3".into()).point_id().0);
        assert_ne!(a, SourceId::Text("1.2.4".into()).point_id().0);
        assert_eq!(
            SourceId::Text("42".into()).point_id(),
            (PointId::Num(42), false)
        );
        let fault = read_json_record(br#"{"id": -1, "vector": [1]}"#).unwrap_err();
        assert_eq!(fault.field, "id");
        let fault = read_json_record(br#"{"id": 1, "vector": [1, NaN]}"#).unwrap_err();
        assert!(fault.message.contains("NaN"), "{fault:?}");
    }
}
