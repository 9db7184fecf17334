//! The files an import reads, each as a stream of records with their positions: JSON (the
//! PowerShell vectoriser's `task_vectors.json`, the Go migrator's list, Qdrant's points),
//! JSON Lines (the Go migrator's and mnemo's exports), `.npy` with a sidecar of payloads, and
//! pickles. Formats are told apart by their first bytes, not by their names.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use mnemo_store::CollectionConfig;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::TransferError;
use crate::npy::{self, NpyHeader};
use crate::pickle::{self, Py};
use crate::record::{
    RecordFault, SourceId, SourceRecord, SourceVector, VectorInput, assemble, read_json_record,
};
use crate::scan::{Item, Layout, Scanner};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportFormat {
    /// Decided from the first bytes of the file.
    Auto,
    /// The PowerShell vectoriser's `{"metadata", "tasks": [...]}`.
    TaskVectors,
    /// The Go migrator's `[{"id", "vector", "metadata", "source"}]`.
    List,
    /// One record per line: the Go migrator's JSON Lines, mnemo's export.
    Jsonl,
    /// Qdrant's `{"points": [{"id", "vector" | "vectors", "payload"}]}`.
    Qdrant,
    /// NumPy `.npy` (2-D float32/float64) with a sidecar JSON Lines of ids and payloads.
    Npy,
    /// A Python pickle: a list of dicts, or a dict of columns.
    Pickle,
}

pub const FORMAT_NAMES: &str = "auto, task-vectors, list, jsonl, qdrant, npy, pickle";

impl FromStr for ImportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => Self::Auto,
            "task-vectors" | "powershell" => Self::TaskVectors,
            "list" | "go" => Self::List,
            "jsonl" | "ndjson" | "mnemo" => Self::Jsonl,
            "qdrant" => Self::Qdrant,
            "npy" | "numpy" => Self::Npy,
            "pickle" | "pkl" => Self::Pickle,
            other => return Err(format!("unknown format `{other}` (known: {FORMAT_NAMES})")),
        })
    }
}

impl fmt::Display for ImportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::TaskVectors => "task-vectors",
            Self::List => "list",
            Self::Jsonl => "jsonl",
            Self::Qdrant => "qdrant",
            Self::Npy => "npy",
            Self::Pickle => "pickle",
        })
    }
}

/// What a file says of itself, where it says it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileHeader {
    pub dimension: Option<usize>,
    pub model: Option<String>,
    /// mnemo's own exports carry the collection's config.
    pub config: Option<CollectionConfig>,
    pub count: Option<usize>,
    /// The name of the vector a record gives unnamed (`.npy` rows of a mnemo export).
    pub unnamed_vector: Option<String>,
}

/// The first line of mnemo's exports (JSON Lines, and the sidecar of `.npy`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportHeader {
    pub mnemo_export: u32,
    pub collection: String,
    pub config: CollectionConfig,
    #[serde(default)]
    pub points: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npy_vector: Option<String>,
}

/// One record as read, and where.
#[derive(Debug)]
pub struct Located {
    pub index: usize,
    pub line: Option<usize>,
    pub record: Result<SourceRecord, RecordFault>,
}

/// Decides the format from the first bytes (and the name only where bytes cannot tell).
pub fn detect(path: &Path) -> Result<ImportFormat, TransferError> {
    let io = |error| TransferError::ReadFile {
        path: path.to_owned(),
        error,
    };
    let mut head = Vec::with_capacity(1 << 20);
    File::open(path)
        .map_err(io)?
        .take(1 << 20)
        .read_to_end(&mut head)
        .map_err(io)?;
    if head.starts_with(npy::MAGIC) {
        return Ok(ImportFormat::Npy);
    }
    // Protocol 2+ pickles start with PROTO; protocol 0/1 ones are only known by their name.
    if head.first() == Some(&0x80) {
        return Ok(ImportFormat::Pickle);
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if matches!(extension.as_deref(), Some("pkl" | "pickle")) {
        return Ok(ImportFormat::Pickle);
    }
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&head);
    if text.starts_with(b"\xff\xfe") || text.starts_with(b"\xfe\xff") {
        return Err(TransferError::Format {
            path: path.to_owned(),
            message: "the file is UTF-16 (PowerShell 5's Out-File default): convert it to UTF-8 \
                      first, e.g. Get-Content f | Set-Content -Encoding utf8 g"
                .into(),
        });
    }
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    match text.first() {
        Some(b'[') => Ok(ImportFormat::List),
        Some(b'{') => {
            // A whole first line that is one object is JSON Lines, unless that object is
            // itself the document (a minified `{"points": [...]}`).
            let line = text.split(|b| *b == b'\n').next().unwrap_or(text);
            if let Ok(Value::Object(first)) = serde_json::from_slice::<Value>(line) {
                if first.get("points").is_some_and(Value::is_array) {
                    return Ok(ImportFormat::Qdrant);
                }
                if first.get("tasks").is_some_and(Value::is_array) {
                    return Ok(ImportFormat::TaskVectors);
                }
                return Ok(ImportFormat::Jsonl);
            }
            let window = String::from_utf8_lossy(&text[..text.len().min(1 << 16)]);
            if window.contains("\"points\"") {
                Ok(ImportFormat::Qdrant)
            } else {
                Ok(ImportFormat::TaskVectors)
            }
        }
        _ => Err(TransferError::Format {
            path: path.to_owned(),
            message: format!(
                "cannot tell the format from the first bytes: not JSON, JSON Lines, .npy or a \
                 pickle; name it with --format ({FORMAT_NAMES})"
            ),
        }),
    }
}

/// An open file of any format, read record by record.
pub enum Source {
    Json(JsonSource<BufReader<File>>),
    Npy(Box<NpySource>),
    Pickle(PickleSource),
}

impl Source {
    pub fn open(
        path: &Path,
        format: ImportFormat,
        sidecar: Option<&Path>,
    ) -> Result<Self, TransferError> {
        let io = |error| TransferError::ReadFile {
            path: path.to_owned(),
            error,
        };
        Ok(match format {
            ImportFormat::Auto => return Self::open(path, detect(path)?, sidecar),
            ImportFormat::TaskVectors | ImportFormat::Qdrant => Self::Json(JsonSource::new(
                path,
                BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?),
                Layout::Object,
            )),
            ImportFormat::List => Self::Json(JsonSource::new(
                path,
                BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?),
                Layout::Array,
            )),
            ImportFormat::Jsonl => Self::Json(JsonSource::new(
                path,
                BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?),
                Layout::Lines,
            )),
            ImportFormat::Npy => Self::Npy(Box::new(NpySource::open(path, sidecar)?)),
            ImportFormat::Pickle => Self::Pickle(PickleSource::open(path)?),
        })
    }

    pub fn next(&mut self) -> Result<Option<Located>, TransferError> {
        match self {
            Self::Json(source) => source.next(),
            Self::Npy(source) => source.next(),
            Self::Pickle(source) => Ok(source.next()),
        }
    }

    pub fn header(&self) -> &FileHeader {
        match self {
            Self::Json(source) => &source.header,
            Self::Npy(source) => &source.header,
            Self::Pickle(source) => &source.header,
        }
    }

    /// Bytes read so far, for progress.
    pub fn bytes_read(&self) -> u64 {
        match self {
            Self::Json(source) => source.scanner.offset(),
            Self::Npy(source) => source.bytes_read(),
            Self::Pickle(source) => source.bytes_read(),
        }
    }
}

/// The `metadata` member of the PowerShell file.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyMetadata {
    vector_dimension: Option<usize>,
    model: Option<String>,
    task_count: Option<usize>,
}

pub struct JsonSource<R> {
    path: PathBuf,
    scanner: Scanner<R>,
    layout: Layout,
    header: FileHeader,
    index: usize,
    saw_records: bool,
    first_line: bool,
}

impl<R: BufRead> JsonSource<R> {
    fn new(path: &Path, reader: R, layout: Layout) -> Self {
        Self {
            path: path.to_owned(),
            scanner: Scanner::new(reader, layout, &["tasks", "points"]),
            layout,
            header: FileHeader::default(),
            index: 0,
            saw_records: false,
            first_line: true,
        }
    }

    fn next(&mut self) -> Result<Option<Located>, TransferError> {
        loop {
            let first_line = std::mem::replace(&mut self.first_line, false);
            let item = self
                .scanner
                .next_item()
                .map_err(|error| TransferError::Scan {
                    path: self.path.clone(),
                    error,
                })?;
            match item {
                None => {
                    if self.layout == Layout::Object && !self.saw_records {
                        return Err(TransferError::Format {
                            path: self.path.clone(),
                            message: "the object has no `tasks` or `points` list of records".into(),
                        });
                    }
                    return Ok(None);
                }
                Some(Item::Member(key, value)) => {
                    if key == "metadata"
                        && let Ok(meta) = serde_json::from_slice::<LegacyMetadata>(value)
                    {
                        self.header.dimension = meta.vector_dimension.or(self.header.dimension);
                        self.header.model = meta.model.or(self.header.model.take());
                        self.header.count = meta.task_count.or(self.header.count);
                    }
                }
                Some(Item::Record(bytes, position)) => {
                    self.saw_records = true;
                    if first_line && self.layout == Layout::Lines && is_export_header(bytes) {
                        let header: ExportHeader =
                            serde_json::from_slice(bytes).map_err(|e| TransferError::Format {
                                path: self.path.clone(),
                                message: format!("line 1: a bad mnemo export header: {e}"),
                            })?;
                        self.header.config = Some(header.config);
                        self.header.count = header.points;
                        self.header.unnamed_vector = header.npy_vector;
                        continue;
                    }
                    let index = self.index;
                    self.index += 1;
                    return Ok(Some(Located {
                        index,
                        line: Some(position.line),
                        record: read_json_record(bytes),
                    }));
                }
            }
        }
    }
}

fn is_export_header(bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[allow(dead_code)]
        mnemo_export: u32,
    }
    bytes.len() < 1 << 20 && serde_json::from_slice::<Probe>(bytes).is_ok()
}

/// `.npy` rows, each joined with the same line of the sidecar (ids and payloads).
pub struct NpySource {
    path: PathBuf,
    reader: BufReader<File>,
    npy: NpyHeader,
    sidecar: Option<JsonSource<BufReader<File>>>,
    header: FileHeader,
    row: usize,
    scratch: Vec<u8>,
}

/// Where the payloads of `X.npy` are looked for when not named: `X.jsonl`, then `X.npy.jsonl`.
pub fn default_sidecar(path: &Path) -> Option<PathBuf> {
    [
        path.with_extension("jsonl"),
        PathBuf::from(format!("{}.jsonl", path.display())),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

impl NpySource {
    fn open(path: &Path, sidecar: Option<&Path>) -> Result<Self, TransferError> {
        let io = |error| TransferError::ReadFile {
            path: path.to_owned(),
            error,
        };
        let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
        let npy = npy::read_header(&mut reader).map_err(|message| TransferError::Format {
            path: path.to_owned(),
            message,
        })?;
        // The header's shape is a claim: it must fit in the file before anything is sized by it.
        let file_len = reader.get_ref().metadata().map_err(io)?.len();
        let claimed = (npy.rows as u64)
            .checked_mul(npy.columns as u64)
            .and_then(|values| values.checked_mul(npy.element.size() as u64))
            .and_then(|bytes| bytes.checked_add(npy.data_offset));
        if claimed.is_none_or(|bytes| bytes > file_len) {
            return Err(TransferError::Format {
                path: path.to_owned(),
                message: format!(
                    "the header declares {} rows of {} numbers, more than the file's {file_len} bytes hold",
                    npy.rows, npy.columns
                ),
            });
        }
        let sidecar = match sidecar
            .map(Path::to_owned)
            .or_else(|| default_sidecar(path))
        {
            Some(sidecar_path) => {
                let file = File::open(&sidecar_path).map_err(|error| TransferError::ReadFile {
                    path: sidecar_path.clone(),
                    error,
                })?;
                Some(JsonSource::new(
                    &sidecar_path,
                    BufReader::new(file),
                    Layout::Lines,
                ))
            }
            None => None,
        };
        let header = FileHeader {
            dimension: Some(npy.columns),
            count: Some(npy.rows),
            ..FileHeader::default()
        };
        Ok(Self {
            path: path.to_owned(),
            reader,
            npy,
            sidecar,
            header,
            row: 0,
            scratch: Vec::new(),
        })
    }

    fn bytes_read(&self) -> u64 {
        self.npy.data_offset + (self.row * self.npy.columns * self.npy.element.size()) as u64
    }

    fn next(&mut self) -> Result<Option<Located>, TransferError> {
        let side = match &mut self.sidecar {
            Some(sidecar) => {
                let next = sidecar.next()?;
                if let Some(config) = sidecar.header.config.take() {
                    self.header.config = Some(config);
                    self.header.unnamed_vector = sidecar.header.unnamed_vector.take();
                }
                next
            }
            None => None,
        };
        if self.row == self.npy.rows {
            if let Some(extra) = side {
                return Err(TransferError::Format {
                    path: self.sidecar_path(),
                    message: format!(
                        "line {}: more payload lines than the {} rows of {}",
                        extra.line.unwrap_or(0),
                        self.npy.rows,
                        self.path.display()
                    ),
                });
            }
            return Ok(None);
        }
        let mut values = Vec::with_capacity(self.npy.columns);
        npy::read_row(&mut self.reader, &self.npy, &mut self.scratch, &mut values).map_err(
            |e| TransferError::Format {
                path: self.path.clone(),
                message: format!(
                    "row {} of {}: {e}: the file is truncated",
                    self.row, self.npy.rows
                ),
            },
        )?;
        let index = self.row;
        self.row += 1;
        let (line, record) = match side {
            Some(located) => (located.line, located.record),
            None if self.sidecar.is_some() => (
                None,
                Err(RecordFault::new(
                    "",
                    format!(
                        "has no line in the sidecar {}",
                        self.sidecar_path().display()
                    ),
                )),
            ),
            None => (None, Ok(SourceRecord::default())),
        };
        let record = record.and_then(|mut record| {
            let all_nan = values.iter().all(|v| v.is_nan());
            if let Some(position) = values
                .iter()
                .position(|v| !v.is_finite())
                .filter(|_| !all_nan)
            {
                return Err(RecordFault::new(
                    format!("row {index}"),
                    format!("holds {} at column {position}", values[position]),
                ));
            }
            record.id.get_or_insert(SourceId::Num(index as u64));
            // mnemo's export writes a point that lacks this vector as a row of NaN.
            if !values.iter().all(|v| v.is_nan()) {
                record
                    .vectors
                    .insert(String::new(), SourceVector::Dense(values));
            }
            Ok(record)
        });
        Ok(Some(Located {
            index,
            line,
            record,
        }))
    }

    fn sidecar_path(&self) -> PathBuf {
        self.sidecar
            .as_ref()
            .map(|s| s.path.clone())
            .unwrap_or_default()
    }
}

/// A pickle, read whole (pickles cannot be streamed), then handed out record by record.
pub struct PickleSource {
    records: std::vec::IntoIter<Located>,
    header: FileHeader,
    size: u64,
    done: usize,
    total: usize,
}

impl PickleSource {
    fn open(path: &Path) -> Result<Self, TransferError> {
        let bytes = std::fs::read(path).map_err(|error| TransferError::ReadFile {
            path: path.to_owned(),
            error,
        })?;
        let format = |message: String| TransferError::Format {
            path: path.to_owned(),
            message,
        };
        let value = pickle::load(&bytes).map_err(format)?;
        let (records, header) = pickle_records(value).map_err(format)?;
        let total = records.len();
        Ok(Self {
            records: records.into_iter(),
            header,
            size: bytes.len() as u64,
            done: 0,
            total,
        })
    }

    fn next(&mut self) -> Option<Located> {
        let next = self.records.next();
        self.done += next.is_some() as usize;
        next
    }

    fn bytes_read(&self) -> u64 {
        (self.size as f64 * self.done as f64 / self.total.max(1) as f64) as u64
    }
}

/// Column names of a dict of lists, as the old scripts (and Chroma) named them, and the
/// member names records use.
fn column_field(name: &str) -> &str {
    match name {
        "ids" => "id",
        "texts" | "documents" => "text",
        "metadatas" => "metadata",
        "vectors" | "embeddings" => "vector",
        "payloads" => "payload",
        other => other,
    }
}

fn pickle_records(value: Py) -> Result<(Vec<Located>, FileHeader), String> {
    let mut header = FileHeader::default();
    let rows: Vec<Vec<(String, Py)>> = match &value {
        Py::List(items) => items
            .borrow()
            .iter()
            .map(|item| match item {
                Py::Dict(dict) => Ok(dict
                    .borrow()
                    .iter()
                    .map(|(k, v)| (py_key(k), v.clone()))
                    .collect()),
                other => Err(format!(
                    "the pickle is a list of {}: expected a list of dicts (records)",
                    other.type_name()
                )),
            })
            .collect::<Result<_, _>>()?,
        Py::Dict(dict) => {
            let dict = dict.borrow();
            let mut columns: Vec<(String, Vec<Py>)> = Vec::new();
            for (key, column) in dict.iter() {
                let name = column_field(&py_key(key)).to_owned();
                match column_items(column) {
                    Some(items) => columns.push((name, items)),
                    None => {
                        if let Py::Str(text) = column
                            && name == "model"
                        {
                            header.model = Some(text.clone());
                        }
                    }
                }
            }
            let Some((_, vectors)) = columns.iter().find(|(name, _)| name == "vector") else {
                return Err(
                    "the pickle is a dict without a `vectors` or `embeddings` list: expected a \
                     list of records or a dict of columns"
                        .into(),
                );
            };
            let rows = vectors.len();
            if let Some((name, column)) = columns.iter().find(|(_, c)| c.len() != rows) {
                return Err(format!(
                    "column `{name}` has {} items but there are {rows} vectors",
                    column.len()
                ));
            }
            (0..rows)
                .map(|row| {
                    columns
                        .iter()
                        .map(|(name, column)| (name.clone(), column[row].clone()))
                        .collect()
                })
                .collect()
        }
        other => {
            return Err(format!(
                "the pickle holds a {}: expected a list of records or a dict of columns",
                other.type_name()
            ));
        }
    };
    let records = rows
        .into_iter()
        .enumerate()
        .map(|(index, row)| Located {
            index,
            line: None,
            record: pickle_record(row),
        })
        .collect();
    Ok((records, header))
}

/// The items of a list, a tuple, or the rows of a 2-D array (as 1-D arrays).
fn column_items(value: &Py) -> Option<Vec<Py>> {
    match value {
        Py::List(items) => Some(items.borrow().clone()),
        Py::Tuple(items) => Some(items.to_vec()),
        Py::Array(array) => {
            let array = array.borrow();
            let array = array.as_ref()?;
            match array.shape[..] {
                [rows, columns] => Some(
                    (0..rows)
                        .map(|r| {
                            let values = array.values[r * columns..(r + 1) * columns].to_vec();
                            Py::Array(std::rc::Rc::new(std::cell::RefCell::new(Some(
                                pickle::NdArray {
                                    shape: vec![columns],
                                    values,
                                    float32: array.float32,
                                },
                            ))))
                        })
                        .collect(),
                ),
                [_] => Some(
                    array
                        .values
                        .iter()
                        .map(|v| {
                            if v.fract() == 0.0 && !array.float32 && v.abs() < 9e15 {
                                Py::Int(*v as i64)
                            } else {
                                Py::Float(*v)
                            }
                        })
                        .collect(),
                ),
                _ => None,
            }
        }
        _ => None,
    }
}

fn py_key(key: &Py) -> String {
    match key {
        Py::Str(s) => s.clone(),
        Py::Int(n) => n.to_string(),
        other => other.type_name().to_owned(),
    }
}

fn pickle_record(row: Vec<(String, Py)>) -> Result<SourceRecord, RecordFault> {
    let mut fields = Vec::new();
    let mut vectors = Vec::new();
    for (key, value) in row {
        if crate::record::VECTOR_KEYS.contains(&key.as_str()) || key == "vectors" {
            let vector = py_vector(&value).map_err(|message| RecordFault::new(&key, message))?;
            vectors.push((key, VectorInput::Read(SourceVector::Dense(vector))));
        } else {
            let json = py_json(&value).map_err(|message| RecordFault::new(&key, message))?;
            fields.push((key, json));
        }
    }
    assemble(fields, vectors)
}

fn py_vector(value: &Py) -> Result<Vec<f32>, String> {
    let values: Vec<f64> = match value {
        Py::Array(array) => {
            let array = array.borrow();
            let array = array.as_ref().ok_or("is a numpy array never filled")?;
            if array.shape.len() != 1 {
                return Err(format!(
                    "is a numpy array of shape {:?}, not one vector",
                    array.shape
                ));
            }
            array.values.clone()
        }
        Py::List(_) | Py::Tuple(_) => {
            let items = column_items(value).unwrap_or_default();
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Py::Float(v) => Ok(*v),
                    Py::Int(v) => Ok(*v as f64),
                    other => Err(format!(
                        "element {i} is {}, not a number",
                        other.type_name()
                    )),
                })
                .collect::<Result<_, _>>()?
        }
        other => return Err(format!("is {}, not a list of numbers", other.type_name())),
    };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let single = *v as f32;
            if single.is_finite() {
                Ok(single)
            } else {
                Err(format!("element {i} is {v}, not a finite 32-bit float"))
            }
        })
        .collect()
}

/// How deep lists and dicts may nest in a pickled payload. Conversion recurses once per level,
/// and a list that holds itself nests without end.
const MAX_PICKLE_DEPTH: usize = 64;

fn py_json(value: &Py) -> Result<Value, String> {
    py_json_within(value, MAX_PICKLE_DEPTH)
}

fn py_json_within(value: &Py, depth: usize) -> Result<Value, String> {
    if depth == 0 {
        return Err(format!(
            "nests deeper than {MAX_PICKLE_DEPTH} levels (or holds itself)"
        ));
    }
    Ok(match value {
        Py::None => Value::Null,
        Py::Bool(b) => Value::Bool(*b),
        Py::Int(n) => Value::from(*n),
        Py::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("holds {f}, which JSON cannot hold"))?,
        Py::Str(s) => Value::String(s.clone()),
        Py::List(_) | Py::Tuple(_) | Py::Array(_) => Value::Array(
            column_items(value)
                .unwrap_or_default()
                .iter()
                .map(|item| py_json_within(item, depth - 1))
                .collect::<Result<_, _>>()?,
        ),
        Py::Dict(dict) => {
            let mut map = Map::new();
            for (k, v) in dict.borrow().iter() {
                map.insert(py_key(k), py_json_within(v, depth - 1)?);
            }
            Value::Object(map)
        }
        other => {
            return Err(format!(
                "holds {}, which JSON cannot hold",
                other.type_name()
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A .npy file of float32 rows with this shape, holding `data`.
    fn npy_file(shape: &str, data: &[u8]) -> tempfile::NamedTempFile {
        let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        let mut header = dict.into_bytes();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend(header);
        bytes.extend_from_slice(data);
        let file = tempfile::Builder::new().suffix(".npy").tempfile().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        file
    }

    #[test]
    fn a_shape_the_file_cannot_hold_is_refused_before_anything_is_sized_by_it() {
        let error = |shape: &str| match NpySource::open(npy_file(shape, &[0; 24]).path(), None) {
            Err(error) => error.to_string(),
            Ok(_) => panic!("{shape} was accepted"),
        };
        assert!(error("(1000000000, 384)").contains("more than the file's"));
        assert!(error("(18446744073709551615, 384)").contains("more than the file's"));
        assert!(error("(1000000000, 0)").contains("rows of 0 numbers"));
        assert!(NpySource::open(npy_file("(2, 3)", &[0; 24]).path(), None).is_ok());
    }

    #[test]
    fn a_payload_that_holds_itself_is_refused_not_followed() {
        // [{"id": 1, "meta": L}] where L = [L]: EMPTY_LIST, MARK, EMPTY_DICT, MARK, "id", 1,
        // "meta", EMPTY_LIST + BINPUT 1, BINGET 1, APPEND, SETITEMS, APPENDS.
        let data = b"\x80\x02](}(X\x02\x00\x00\x00idK\x01X\x04\x00\x00\x00meta]q\x01h\x01aue.";
        let value = pickle::load(data).unwrap();
        let Py::List(records) = &value else {
            panic!("not a list")
        };
        let Py::Dict(record) = &records.borrow()[0] else {
            panic!("not a dict")
        };
        let meta = record.borrow()[1].1.clone();
        let message = py_json(&meta).unwrap_err();
        assert!(message.contains("deeper than 64 levels"), "{message}");
        // The cycle is broken by hand so the test itself does not leak it.
        if let Py::List(list) = &meta {
            list.borrow_mut().clear();
        }
    }
}
