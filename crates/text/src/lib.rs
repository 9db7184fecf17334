//! Markdown plans and notes to tasks, headings, progress lines and passages.
//!
//! Pure: no I/O beyond reading the one file asked for, no dependency on the embedder (the
//! caller passes the function that counts word pieces). Damaged input is parsed as well as
//! it can be and described in [`Document::diagnostics`]; only unreadable or binary files
//! are errors.

mod decode;
mod error;
mod identity;
mod inline;
mod line;
mod meta;
mod parse;
mod passage;
mod repair;

use std::path::Path;

use serde::Serialize;

pub use decode::SourceEncoding;
pub use error::TextError;
pub use meta::{Estimate, Metadata, Priority};
pub use passage::approx_word_pieces;
pub use repair::{Leftover, LeftoverReason, RepairMode, repair_line};

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    InProgress,
    Blocked,
    Cancelled,
    Done,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Open,
        Status::InProgress,
        Status::Blocked,
        Status::Cancelled,
        Status::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::InProgress => "in_progress",
            Self::Blocked => "blocked",
            Self::Cancelled => "cancelled",
            Self::Done => "done",
        }
    }

    /// Parses `open`, `done`, `in_progress` (or `in-progress`), `blocked`, `cancelled`.
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.replace('-', "_").to_lowercase();
        Self::ALL.into_iter().find(|status| {
            status.as_str() == name || (name == "canceled" && *status == Self::Cancelled)
        })
    }

    /// Every status's name, separated by commas: what a message lists as expected.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

/// A checkbox list item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    /// Stable across unrelated edits and re-saves; changes with the task's text or its
    /// place in the tree (file, headings, parent tasks). UUID-shaped.
    pub id: String,
    /// Hash of what would be embedded (title and body), to skip unchanged work.
    pub text_hash: String,
    /// Plain text, repaired, without markup, status markers or the task's number.
    pub title: String,
    /// The item's text after the checkbox, exactly as in the file (before repair).
    pub title_raw: String,
    pub status: Status,
    /// What was inside the checkbox (` `, `x`, `✅`, `~`...).
    pub status_raw: String,
    /// Status words or emoji found in the text (`✅`, `EN COURS`), if any.
    pub status_text: Option<Status>,
    /// `1.2.3` from `**1.2.3**`, `Micro-étape 1.2.3:`, `Étape 3 :`...
    pub number: Option<String>,
    /// Number of parent tasks above this one.
    pub depth: usize,
    /// Index of the parent task in [`Document::tasks`].
    pub parent: Option<usize>,
    pub parent_id: Option<String>,
    /// Heading titles from the top of the file down to this task.
    pub section_path: Vec<String>,
    /// Index in [`Document::headings`] of the nearest heading above.
    pub heading: Option<usize>,
    /// 1-based.
    pub line: usize,
    /// Non-task lines that belong to the task: continuation lines and plain sub-items.
    pub body: String,
    /// The task's own metadata (its line and body).
    pub meta: Metadata,
    /// Priority, falling back to the parent tasks' and then the sections'.
    pub priority: Option<Priority>,
    /// MVP here, in a parent task or in a section above.
    pub mvp: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Heading {
    pub level: usize,
    pub title: String,
    pub title_raw: String,
    pub number: Option<String>,
    /// `## [x] 2. Guides` or `## Phase 2 ✅`.
    pub status: Option<Status>,
    pub line: usize,
    /// Index of the enclosing heading.
    pub parent: Option<usize>,
    /// Priority and MVP given to the section (`[MVP]`, `- **Priorité** : P1`).
    pub meta: Metadata,
}

/// A stretch of non-task prose under one heading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Passage {
    pub id: String,
    pub text_hash: String,
    pub text: String,
    pub section_path: Vec<String>,
    pub heading: Option<usize>,
    pub line_start: usize,
    pub line_end: usize,
    /// Word pieces, as counted by the caller's function.
    pub tokens: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressScope {
    File,
    Section,
}

/// `Progression : 45%` and its kin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub line: usize,
    pub percent: f32,
    pub scope: ProgressScope,
    pub section_path: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Repairs {
    /// Characters restored from double-encoded UTF-8.
    pub count: usize,
    /// Lines that needed at least one.
    pub lines: usize,
    /// Damage that could not be repaired, with the reason.
    pub left: Vec<Leftover>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticKind {
    /// The file was not UTF-8 and was read as Windows-1252.
    LegacyEncoding,
    /// A fence that is never closed: the rest of the file is code.
    UnclosedFence,
    /// A fence closed by a marker carrying text (` ```plaintext `), read as a close.
    FenceClosedWithText,
    /// The checkbox and the status words of a task disagree; the checkbox wins.
    StatusConflict,
}

/// Something odd about the input, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub line: usize,
    pub kind: DiagnosticKind,
    pub message: String,
}

/// Everything read from one source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    /// The name given by the caller (a path relative to the indexed root, usually). It
    /// is part of every id.
    pub source: String,
    pub encoding: SourceEncoding,
    pub lines: usize,
    pub tasks: Vec<Task>,
    pub headings: Vec<Heading>,
    pub passages: Vec<Passage>,
    pub progress: Vec<Progress>,
    pub repairs: Repairs,
    pub diagnostics: Vec<Diagnostic>,
}

impl Document {
    pub fn count_status(&self, status: Status) -> usize {
        self.tasks
            .iter()
            .filter(|task| task.status == status)
            .count()
    }
}

/// How the text is cut into passages.
#[derive(Clone, Copy)]
pub struct ParseOptions<'a> {
    /// Most word pieces in one passage (256 by default, the model's window).
    pub max_passage_tokens: usize,
    /// Counts word pieces without special tokens. Must be additive over whitespace-joined
    /// pieces, as WordPiece is. Defaults to [`approx_word_pieces`].
    pub count_tokens: &'a (dyn Fn(&str) -> usize + Sync),
}

impl Default for ParseOptions<'_> {
    fn default() -> Self {
        Self {
            max_passage_tokens: 256,
            count_tokens: &approx_word_pieces,
        }
    }
}

/// Parses text already in memory. `source` names it in ids and messages.
pub fn parse_str(source: &str, text: &str, options: &ParseOptions<'_>) -> Document {
    parse::parse(source, text, SourceEncoding::Utf8, options)
}

/// Parses raw bytes: BOM, UTF-16 and Windows-1252 are handled; binary is refused.
pub fn parse_bytes(
    source: &str,
    bytes: &[u8],
    options: &ParseOptions<'_>,
) -> Result<Document, TextError> {
    let (text, encoding) = decode::decode(bytes, source)?;
    Ok(parse::parse(source, &text, encoding, options))
}

/// Reads and parses one file. `source` is the name ids are built from; pass the path
/// relative to the folder being indexed so ids survive moving the folder.
pub fn parse_file(
    path: &Path,
    source: &str,
    options: &ParseOptions<'_>,
) -> Result<Document, TextError> {
    let bytes = std::fs::read(path).map_err(|err| TextError::Io {
        path: path.to_owned(),
        source: err,
    })?;
    parse_bytes(source, &bytes, options)
}
