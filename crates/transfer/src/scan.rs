//! A streaming splitter of JSON documents into records: the elements of a top-level array, of
//! one array member of a top-level object (`tasks`, `points`), or the lines of JSON Lines.
//! It never holds more than one record (or one non-record member, such as `metadata`) in
//! memory, counts lines so every record is named by its line, and tells a truncated file from
//! a complete one. Each record's bytes are parsed by serde_json afterwards.

use std::io::BufRead;

/// No record is this long (a 65,536-d vector is about 1.5 MiB of text): beyond it the file is
/// broken, and holding more would make memory grow with the file.
const MAX_VALUE_BYTES: usize = 256 << 20;

/// Where a record or a fault is: 1-based line, 0-based byte offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub offset: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {}: {message}", position.line)]
    Syntax { position: Position, message: String },
    #[error("the file ends in the middle of {inside} (line {}): it is truncated", position.line)]
    Truncated { position: Position, inside: String },
}

/// What the scanner found next.
#[derive(Debug)]
pub enum Item<'a> {
    /// A member of the top-level object other than the records (its key and raw value).
    Member(&'a str, &'a [u8]),
    /// The bytes of one record, where it starts.
    Record(&'a [u8], Position),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[record, ...]`
    Array,
    /// `{"KEY": [record, ...], "other": ...}` with KEY one of the given names.
    Object,
    /// One record per non-blank line.
    Lines,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    /// Inside the top-level object, before a key (or its closing brace).
    ObjectKey {
        first: bool,
    },
    /// Inside the records array, before an element (or the closing bracket).
    InArray {
        first: bool,
        nested: bool,
    },
    Done,
}

pub struct Scanner<R> {
    reader: R,
    layout: Layout,
    record_keys: &'static [&'static str],
    state: State,
    line: usize,
    offset: u64,
    buf: Vec<u8>,
    key: String,
}

impl<R: BufRead> Scanner<R> {
    /// `record_keys`: for `Layout::Object`, the member names that hold the records.
    pub fn new(reader: R, layout: Layout, record_keys: &'static [&'static str]) -> Self {
        Self {
            reader,
            layout,
            record_keys,
            state: State::Start,
            line: 1,
            offset: 0,
            buf: Vec::new(),
            key: String::new(),
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn position(&self) -> Position {
        Position {
            line: self.line,
            offset: self.offset,
        }
    }

    fn syntax(&self, message: impl Into<String>) -> ScanError {
        ScanError::Syntax {
            position: self.position(),
            message: message.into(),
        }
    }

    fn truncated(&self, inside: &str) -> ScanError {
        ScanError::Truncated {
            position: self.position(),
            inside: inside.to_owned(),
        }
    }

    fn peek(&mut self) -> Result<Option<u8>, ScanError> {
        Ok(self.reader.fill_buf()?.first().copied())
    }

    fn bump(&mut self) {
        self.reader.consume(1);
        self.offset += 1;
    }

    /// Skips whitespace (and a UTF-8 byte order mark at the very start); the next byte.
    fn skip_ws(&mut self) -> Result<Option<u8>, ScanError> {
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                return Ok(None);
            }
            let mut used = 0;
            let mut found = None;
            for &byte in chunk {
                match byte {
                    b'\n' => self.line += 1,
                    b' ' | b'\t' | b'\r' => {}
                    other => {
                        found = Some(other);
                        break;
                    }
                }
                used += 1;
            }
            self.reader.consume(used);
            self.offset += used as u64;
            if found.is_some() {
                return Ok(found);
            }
        }
    }

    /// Reads one whole JSON value into `self.buf` (strings, nesting and escapes followed,
    /// lines counted). Scalars end at the first byte that cannot continue them.
    fn read_value(&mut self, what: &str) -> Result<(), ScanError> {
        self.buf.clear();
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        let mut started = false;
        let mut scalar = false;
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                if scalar && depth == 0 && !in_string {
                    return Ok(());
                }
                return Err(self.truncated(what));
            }
            let mut used = 0;
            let mut done = false;
            for &byte in chunk {
                if in_string {
                    used += 1;
                    if escaped {
                        escaped = false;
                    } else if byte == b'\\' {
                        escaped = true;
                    } else if byte == b'"' {
                        in_string = false;
                        if depth == 0 {
                            done = true;
                            break;
                        }
                    } else if byte == b'\n' {
                        self.line += 1;
                    }
                    continue;
                }
                match byte {
                    b'"' => {
                        in_string = true;
                        started = true;
                    }
                    b'{' | b'[' => {
                        depth += 1;
                        started = true;
                    }
                    b'}' | b']' => {
                        if depth == 0 {
                            // The container around a scalar closes: the scalar is complete.
                            done = true;
                            break;
                        }
                        depth -= 1;
                        if depth == 0 {
                            used += 1;
                            done = true;
                            break;
                        }
                    }
                    b',' | b' ' | b'\t' | b'\r' | b'\n' if depth == 0 && started => {
                        done = true;
                        break;
                    }
                    b'\n' => self.line += 1,
                    _ => {
                        if depth == 0 {
                            scalar = true;
                        }
                        started = true;
                    }
                }
                used += 1;
            }
            self.buf.extend_from_slice(&chunk[..used]);
            self.reader.consume(used);
            self.offset += used as u64;
            if done {
                return Ok(());
            }
            if self.buf.len() > MAX_VALUE_BYTES {
                return Err(self.syntax(format!(
                    "{what} is longer than {} MiB: a broken file (an unclosed string or bracket?)",
                    MAX_VALUE_BYTES >> 20
                )));
            }
        }
    }

    /// The next member or record; `None` at the end of the document.
    pub fn next_item(&mut self) -> Result<Option<Item<'_>>, ScanError> {
        loop {
            match self.state {
                State::Done => {
                    return match self.skip_ws()? {
                        None => Ok(None),
                        Some(_) => {
                            Err(self.syntax("unexpected text after the end of the document"))
                        }
                    };
                }
                State::Start => {
                    let first = self.skip_ws()?;
                    // A UTF-8 byte order mark, as PowerShell writes.
                    if first == Some(0xEF) {
                        let chunk = self.reader.fill_buf()?;
                        if chunk.starts_with(&[0xEF, 0xBB, 0xBF]) {
                            self.reader.consume(3);
                            self.offset += 3;
                            continue;
                        }
                    }
                    match (self.layout, first) {
                        (_, None) => return Err(self.syntax("the file is empty")),
                        (Layout::Lines, Some(_)) => {
                            self.state = State::InArray {
                                first: true,
                                nested: false,
                            };
                        }
                        (Layout::Array, Some(b'[')) => {
                            self.bump();
                            self.state = State::InArray {
                                first: true,
                                nested: false,
                            };
                        }
                        (Layout::Object, Some(b'{')) => {
                            self.bump();
                            self.state = State::ObjectKey { first: true };
                        }
                        (Layout::Array, Some(_)) => {
                            return Err(self.syntax("expected `[` (a list of records)"));
                        }
                        (Layout::Object, Some(_)) => {
                            return Err(self.syntax("expected `{` (an object)"));
                        }
                    }
                }
                State::ObjectKey { first } => {
                    match self.skip_ws()? {
                        None => return Err(self.truncated("the top-level object")),
                        Some(b'}') => {
                            self.bump();
                            self.state = State::Done;
                            continue;
                        }
                        Some(b',') if !first => {
                            self.bump();
                        }
                        Some(_) if first => {}
                        Some(other) => {
                            return Err(self.syntax(format!(
                                "expected `,` or `}}` between members, found `{}`",
                                other as char
                            )));
                        }
                    }
                    if self.skip_ws()? != Some(b'"') {
                        return Err(self.syntax("expected a member name in quotes"));
                    }
                    self.read_value("a member name")?;
                    self.key = serde_json::from_slice(&self.buf)
                        .map_err(|e| self.syntax(format!("bad member name: {e}")))?;
                    match self.skip_ws()? {
                        Some(b':') => self.bump(),
                        None => return Err(self.truncated("the top-level object")),
                        Some(_) => return Err(self.syntax("expected `:` after a member name")),
                    }
                    let next = self.skip_ws()?;
                    if next == Some(b'[') && self.record_keys.contains(&self.key.as_str()) {
                        self.bump();
                        self.state = State::InArray {
                            first: true,
                            nested: true,
                        };
                        continue;
                    }
                    let what = format!("member `{}`", self.key);
                    self.read_value(&what)?;
                    self.state = State::ObjectKey { first: false };
                    return Ok(Some(Item::Member(&self.key, &self.buf)));
                }
                State::InArray { first, nested } => {
                    let lines = self.layout == Layout::Lines;
                    match self.skip_ws()? {
                        None if lines => {
                            self.state = State::Done;
                            continue;
                        }
                        None => return Err(self.truncated("the list of records")),
                        Some(b']') if !lines => {
                            self.bump();
                            self.state = if nested {
                                State::ObjectKey { first: false }
                            } else {
                                State::Done
                            };
                            continue;
                        }
                        Some(b',') if !first && !lines => self.bump(),
                        Some(_) if first || lines => {}
                        Some(other) => {
                            return Err(self.syntax(format!(
                                "expected `,` or `]` between records, found `{}`",
                                other as char
                            )));
                        }
                    }
                    if !lines && self.skip_ws()?.is_none() {
                        return Err(self.truncated("the list of records"));
                    }
                    let start = self.position();
                    self.read_value("a record")?;
                    if lines {
                        // A record must end its line.
                        while let Some(b' ' | b'\t' | b'\r') = self.peek()? {
                            self.bump();
                        }
                        if !matches!(self.peek()?, None | Some(b'\n')) {
                            return Err(
                                self.syntax("a line of JSON Lines holds more than one value")
                            );
                        }
                    }
                    self.state = State::InArray {
                        first: false,
                        nested,
                    };
                    return Ok(Some(Item::Record(&self.buf, start)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(text: &str, layout: Layout) -> Result<Vec<String>, ScanError> {
        let mut scanner = Scanner::new(text.as_bytes(), layout, &["tasks", "points"]);
        let mut out = Vec::new();
        while let Some(item) = scanner.next_item()? {
            match item {
                Item::Member(key, value) => {
                    out.push(format!("{key}={}", String::from_utf8_lossy(value)))
                }
                Item::Record(bytes, at) => {
                    out.push(format!("{}@{}", String::from_utf8_lossy(bytes), at.line))
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn splits_an_object_with_records_and_members() {
        let text = "\u{feff}{\n  \"metadata\": {\"a\": [1, \"]\"]},\n  \"tasks\": [\n    {\"x\": \"}\\\"\"},\n    {\"y\": [1,\n 2]}\n  ],\n  \"n\": 3\n}\n";
        let items = collect(text, Layout::Object).unwrap();
        assert_eq!(
            items,
            [
                "metadata={\"a\": [1, \"]\"]}",
                "{\"x\": \"}\\\"\"}@4",
                "{\"y\": [1,\n 2]}@5",
                "n=3"
            ]
        );
    }

    #[test]
    fn splits_arrays_and_lines() {
        assert_eq!(
            collect("[{\"a\":1}, {\"b\":2}]", Layout::Array).unwrap(),
            ["{\"a\":1}@1", "{\"b\":2}@1"]
        );
        assert_eq!(
            collect("{\"a\":1}\n\n{\"b\":2}\n", Layout::Lines).unwrap(),
            ["{\"a\":1}@1", "{\"b\":2}@3"]
        );
        assert_eq!(collect("[]", Layout::Array).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn no_input_makes_it_panic() {
        let text = "\u{feff}{\"metadata\": {\"a\": [1, \"]\"]}, \"tasks\": [{\"x\": \"}\\\"\"}, {\"y\": [1,\n 2]}], \"n\": 3}\n";
        let mut state = 3u64;
        for layout in [Layout::Object, Layout::Array, Layout::Lines] {
            for end in 0..text.len() {
                let _ = collect_bytes(&text.as_bytes()[..end], layout);
            }
            for at in 0..text.len() {
                let mut bytes = text.as_bytes().to_vec();
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                bytes[at] = (state >> 56) as u8;
                if let Ok(records) = collect_bytes(&bytes, layout) {
                    for record in records {
                        let _ = crate::record::read_json_record(&record);
                    }
                }
            }
        }
    }

    fn collect_bytes(bytes: &[u8], layout: Layout) -> Result<Vec<Vec<u8>>, ScanError> {
        let mut scanner = Scanner::new(bytes, layout, &["tasks", "points"]);
        let mut out = Vec::new();
        while let Some(item) = scanner.next_item()? {
            if let Item::Record(record, _) = item {
                out.push(record.to_vec());
            }
        }
        Ok(out)
    }

    #[test]
    fn tells_truncation_from_bad_syntax() {
        let truncated = collect("{\"tasks\": [{\"a\": [1, 2", Layout::Object).unwrap_err();
        assert!(
            matches!(truncated, ScanError::Truncated { .. }),
            "{truncated}"
        );
        let truncated = collect("[{\"a\": 1},", Layout::Array).unwrap_err();
        assert!(truncated.to_string().contains("truncated"), "{truncated}");
        let bad = collect("[{\"a\": 1} {\"b\": 2}]", Layout::Array).unwrap_err();
        assert!(matches!(bad, ScanError::Syntax { .. }), "{bad}");
        let two = collect("{\"a\":1} {\"b\":2}\n", Layout::Lines).unwrap_err();
        assert!(two.to_string().contains("more than one value"), "{two}");
    }
}
