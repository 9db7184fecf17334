//! The parser: one pass over the lines with a stack of open list items, then titles,
//! status, metadata, ids and passages.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::decode::SourceEncoding;
use crate::identity::{content_hash, identity_key, stable_id};
use crate::inline::{
    CodeSpans, plain_text, take_leading_status, take_number, take_trailing_status,
};
use crate::line::{self, Fence, Line, ListItem};
use crate::meta::{Metadata, find_progress, mentions_priority};
use crate::passage::{Block, BlockKind, pack};
use crate::repair::{RepairMode, leftovers, repair_line};
use crate::{
    Diagnostic, DiagnosticKind, Document, Heading, ParseOptions, Passage, Progress, ProgressScope,
    Repairs, Status, Task,
};

/// A task while the file is read; finished once its body is complete.
struct RawTask {
    line: usize,
    content: String,
    content_raw: String,
    checkbox_raw: String,
    checkbox_status: Status,
    parent: Option<usize>,
    heading: Option<usize>,
    body: Vec<String>,
}

struct RawHeading {
    level: usize,
    text: String,
    text_raw: String,
    line: usize,
    parent: Option<usize>,
    meta: Metadata,
}

/// An open list item: its marker column, and the task it is (if it has a checkbox).
struct OpenItem {
    indent: usize,
    task: Option<usize>,
}

struct OpenFence {
    marker: char,
    len: usize,
    line: usize,
    /// The task whose body the code belongs to; `None`: prose.
    owner: Option<usize>,
}

struct RawProgress {
    line: usize,
    percent: f32,
    global: bool,
    heading: Option<usize>,
}

struct Parser<'a> {
    raw_lines: &'a [&'a str],
    tasks: Vec<RawTask>,
    headings: Vec<RawHeading>,
    heading_stack: Vec<usize>,
    items: Vec<OpenItem>,
    /// A blank line since the last line that belonged to a list item.
    blank_since_item: bool,
    fence: Option<OpenFence>,
    blocks: Vec<Block>,
    /// The last block can take more lines (no blank, heading or task since).
    block_open: bool,
    progress: Vec<RawProgress>,
    diagnostics: Vec<Diagnostic>,
}

pub(crate) fn parse(
    source: &str,
    text: &str,
    encoding: SourceEncoding,
    options: &ParseOptions<'_>,
) -> Document {
    let raw_lines = split_lines(text);
    let (lines, repairs) = repair_all(&raw_lines);
    let mut parser = Parser {
        raw_lines: &raw_lines,
        tasks: Vec::new(),
        headings: Vec::new(),
        heading_stack: Vec::new(),
        items: Vec::new(),
        blank_since_item: false,
        fence: None,
        blocks: Vec::new(),
        block_open: false,
        progress: Vec::new(),
        diagnostics: Vec::new(),
    };
    if encoding == SourceEncoding::Windows1252 {
        parser.diagnose(
            1,
            DiagnosticKind::LegacyEncoding,
            "not UTF-8: read as Windows-1252".to_owned(),
        );
    }
    for (index, line) in lines.iter().enumerate() {
        parser.line(index + 1, line);
    }
    if let Some(fence) = &parser.fence {
        let message = format!(
            "fence opened on line {} is never closed: the rest of the file is code",
            fence.line
        );
        parser.diagnose(fence.line, DiagnosticKind::UnclosedFence, message);
    }
    parser.finish(source, encoding, repairs, options)
}

/// Lines without their terminators; `\r\n`, `\n` and a lone `\r` all end a line.
fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            Some(end) => {
                lines.push(&rest[..end]);
                let terminator = if rest[end..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = &rest[end + terminator..];
            }
            None => {
                lines.push(rest);
                rest = "";
            }
        }
    }
    lines
}

/// Strict repairs first; a file they prove damaged is repaired again with the
/// NBSP-as-space ones too. An undamaged file (most of them) is read once.
fn repair_all<'a>(raw_lines: &[&'a str]) -> (Vec<Cow<'a, str>>, Repairs) {
    let repair_with = |mode| -> Vec<(Cow<'a, str>, usize)> {
        raw_lines
            .iter()
            .map(|line| repair_line(line, mode))
            .collect()
    };
    let mut repaired = repair_with(RepairMode::Strict);
    if repaired.iter().any(|(_, count)| *count > 0) {
        repaired = repair_with(RepairMode::NbspAsSpace);
    }
    let mut repairs = Repairs::default();
    let lines = repaired
        .into_iter()
        .enumerate()
        .map(|(index, (fixed, count))| {
            if count > 0 {
                repairs.count += count;
                repairs.lines += 1;
            }
            repairs.left.extend(leftovers(index + 1, &fixed));
            fixed
        })
        .collect();
    (lines, repairs)
}

impl Parser<'_> {
    fn diagnose(&mut self, line: usize, kind: DiagnosticKind, message: String) {
        self.diagnostics.push(Diagnostic {
            line,
            kind,
            message,
        });
    }

    fn current_heading(&self) -> Option<usize> {
        self.heading_stack.last().copied()
    }

    fn nearest_task(&self) -> Option<usize> {
        self.items.iter().rev().find_map(|item| item.task)
    }

    fn line(&mut self, number: usize, text: &str) {
        if let Some(fence) = &self.fence {
            let (marker, len) = (fence.marker, fence.len);
            self.line_in_fence(number, text, marker, len);
            return;
        }
        if text.contains('%')
            && let Some((percent, global)) = find_progress(&plain_text(text, CodeSpans::Drop))
        {
            let heading = self.current_heading();
            self.progress.push(RawProgress {
                line: number,
                percent,
                global,
                heading,
            });
        }
        let dequoted = line::dequote(text);
        // Quote markers are layout: bodies and passages keep the words.
        let text = &*dequoted;
        match line::classify(text) {
            Line::Blank => {
                self.blank_since_item = true;
                self.block_open = false;
            }
            Line::Heading {
                level,
                text: heading,
            } => self.heading(number, level, heading),
            Line::ListItem(item) => self.list_item(number, text, &item),
            Line::Fence(fence) => self.open_fence(number, text, fence, line::indent_columns(text)),
            Line::ThematicBreak => {
                if self.items.is_empty()
                    && text.trim().starts_with('-')
                    && self.paragraph_line_above(number)
                {
                    self.setext_heading(number, 2);
                    return;
                }
                self.items.clear();
                self.block_open = false;
            }
            Line::TableRow => self.prose_or_body(number, text, BlockKind::Table, 0),
            Line::Text { indent } => {
                if self.items.is_empty()
                    && is_equals_underline(text)
                    && self.paragraph_line_above(number)
                {
                    self.setext_heading(number, 1);
                    return;
                }
                self.prose_or_body(number, text, BlockKind::Paragraph, indent);
            }
        }
    }

    fn open_fence(&mut self, number: usize, text: &str, fence: Fence<'_>, indent: usize) {
        let owner = self.owner_of_text(indent);
        self.fence = Some(OpenFence {
            marker: fence.marker,
            len: fence.len,
            line: number,
            owner,
        });
        if owner.is_none() {
            self.block_open = false;
            self.prose_line(number, text, BlockKind::Code);
        }
    }

    fn line_in_fence(&mut self, number: usize, text: &str, marker: char, len: usize) {
        let owner = self.fence.as_ref().and_then(|fence| fence.owner);
        let dequoted = line::dequote(text);
        let closer = line::fence(&dequoted).filter(|f| f.marker == marker && f.len >= len);
        if owner.is_none() {
            self.push_block_line(number, text);
        }
        let Some(Fence { info, .. }) = closer else {
            return;
        };
        self.fence = None;
        self.block_open = false;
        if info.is_empty() {
            return;
        }
        // "```  - [x] task": the author closed the fence and went on writing. The item's
        // indentation is what follows the marker, as if the fence were its own line.
        let after_marker = dequoted
            .trim_start_matches([' ', '\t'])
            .trim_start_matches(marker);
        if let Line::ListItem(
            item @ ListItem {
                checkbox: Some(_), ..
            },
        ) = line::classify(after_marker)
        {
            self.list_item(number, after_marker, &item);
            return;
        }
        let message = format!("fence closed by `{}`: read as a closing fence", text.trim());
        self.diagnose(number, DiagnosticKind::FenceClosedWithText, message);
    }

    fn heading(&mut self, number: usize, level: usize, text: &str) {
        let raw = self.raw_text(number).unwrap_or_else(|| text.to_owned());
        self.push_heading(number, level, text.to_owned(), raw);
    }

    /// A heading's or task's text as the unrepaired line has it, for the `*_raw` fields.
    /// Repair never touches ASCII, so the raw line has the same structure; `None` where
    /// the damage hides it (a mangled checkbox) or the task followed a fence closer.
    fn raw_text(&self, number: usize) -> Option<String> {
        match line::classify(&line::dequote(self.raw_lines[number - 1])) {
            Line::Heading { text, .. } => Some(text.to_owned()),
            Line::ListItem(ListItem {
                checkbox: Some(_),
                content,
                ..
            }) => Some(content.to_owned()),
            _ => None,
        }
    }

    fn push_heading(&mut self, number: usize, level: usize, text: String, text_raw: String) {
        self.items.clear();
        self.block_open = false;
        while self
            .heading_stack
            .last()
            .is_some_and(|&top| self.headings[top].level >= level)
        {
            self.heading_stack.pop();
        }
        let mut meta = Metadata::default();
        meta.scan_section(&plain_text(&text, CodeSpans::Drop));
        self.headings.push(RawHeading {
            level,
            text,
            text_raw,
            line: number,
            parent: self.current_heading(),
            meta,
        });
        self.heading_stack.push(self.headings.len() - 1);
    }

    /// `Title` over `===` or `---`: the paragraph line above becomes the heading.
    fn setext_heading(&mut self, number: usize, level: usize) {
        let Some(block) = self.blocks.pop() else {
            return;
        };
        let text = block.lines.join(" ").trim().to_owned();
        let raw = self.raw_lines[number - 2].trim().to_owned();
        self.push_heading(number - 1, level, text, raw);
    }

    fn paragraph_line_above(&self, number: usize) -> bool {
        self.block_open
            && self.blocks.last().is_some_and(|block| {
                block.kind == BlockKind::Paragraph
                    && block.lines.len() == 1
                    && block.last_line + 1 == number
            })
    }

    fn list_item(&mut self, number: usize, text: &str, item: &ListItem<'_>) {
        while self
            .items
            .last()
            .is_some_and(|open| open.indent >= item.indent)
        {
            self.items.pop();
        }
        self.blank_since_item = false;
        let Some(checkbox) = item.checkbox else {
            let owner = self.nearest_task();
            self.items.push(OpenItem {
                indent: item.indent,
                task: None,
            });
            match owner {
                Some(task) => self.tasks[task].body.push(text.trim().to_owned()),
                None => self.prose_line(number, text, BlockKind::List),
            }
            return;
        };
        self.block_open = false;
        let content_raw = self
            .raw_text(number)
            .unwrap_or_else(|| item.content.to_owned());
        let index = self.tasks.len();
        self.tasks.push(RawTask {
            line: number,
            content: item.content.to_owned(),
            content_raw,
            checkbox_raw: checkbox.raw.to_owned(),
            checkbox_status: checkbox.status,
            parent: self.nearest_task(),
            heading: self.current_heading(),
            body: Vec::new(),
        });
        self.items.push(OpenItem {
            indent: item.indent,
            task: Some(index),
        });
    }

    /// The task a non-list line at `indent` belongs to: the item just above (a lazy
    /// continuation), or an open item it is indented under after a blank. `None`: prose.
    fn owner_of_text(&mut self, indent: usize) -> Option<usize> {
        if self.blank_since_item {
            while self.items.last().is_some_and(|open| open.indent >= indent) {
                self.items.pop();
            }
        }
        if self.items.is_empty() {
            return None;
        }
        self.blank_since_item = false;
        self.nearest_task()
    }

    fn prose_or_body(&mut self, number: usize, text: &str, kind: BlockKind, indent: usize) {
        match self.owner_of_text(indent) {
            Some(task) => self.tasks[task].body.push(text.trim().to_owned()),
            None => self.prose_line(number, text, kind),
        }
    }

    fn prose_line(&mut self, number: usize, text: &str, kind: BlockKind) {
        let heading = self.current_heading();
        if let Some(heading) = heading
            && (mentions_priority(text) || text.contains("MVP"))
        {
            self.headings[heading]
                .meta
                .scan_section(&plain_text(text, CodeSpans::Drop));
        }
        let continues =
            self.block_open && self.blocks.last().is_some_and(|block| block.kind == kind);
        if continues {
            self.push_block_line(number, text);
            return;
        }
        self.blocks.push(Block {
            kind,
            heading,
            first_line: number,
            last_line: number,
            lines: vec![text.trim_end().to_owned()],
        });
        self.block_open = true;
    }

    fn push_block_line(&mut self, number: usize, text: &str) {
        if let Some(block) = self.blocks.last_mut() {
            block.lines.push(text.trim_end().to_owned());
            block.last_line = number;
        }
    }
}

fn is_equals_underline(text: &str) -> bool {
    let trimmed = text.trim();
    !trimmed.is_empty() && trimmed.chars().all(|c| c == '=')
}

/// Title, number and status of a task's or heading's text.
struct Title {
    /// Without status markers; with the number (headings show it in section paths).
    display: String,
    /// Without the number too.
    bare: String,
    number: Option<String>,
    status: Option<Status>,
}

fn read_title(markdown: &str) -> Title {
    let plain = plain_text(markdown, CodeSpans::Keep);
    let (after_lead, lead) = take_leading_status(&plain);
    let (display, trail) = take_trailing_status(after_lead);
    let (number, after_number) = take_number(display);
    // "**1.2** ✅ Titre": markers may also follow the number.
    let (bare, after_number_status) = take_leading_status(after_number);
    let display = display.trim();
    let bare = bare.trim_matches(|c: char| c.is_whitespace() || matches!(c, '-' | '–' | '—' | ':'));
    Title {
        display: if display.is_empty() {
            plain.clone()
        } else {
            display.to_owned()
        },
        bare: if bare.is_empty() {
            display.to_owned()
        } else {
            bare.to_owned()
        },
        number,
        status: lead.or(after_number_status).or(trail),
    }
}

impl Parser<'_> {
    fn finish(
        self,
        source: &str,
        encoding: SourceEncoding,
        repairs: Repairs,
        options: &ParseOptions<'_>,
    ) -> Document {
        let mut diagnostics = self.diagnostics;
        let headings = finish_headings(self.headings);
        let paths: Vec<Vec<String>> = (0..headings.len())
            .map(|index| section_path(&headings, Some(index)))
            .collect();
        let keys: Vec<String> = paths
            .iter()
            .map(|path| {
                path.iter()
                    .map(|title| identity_key(title))
                    .collect::<Vec<_>>()
                    .join("\u{1f}")
            })
            .collect();
        let path_of =
            |heading: Option<usize>| heading.map_or_else(Vec::new, |index| paths[index].clone());
        let key_of = |heading: Option<usize>| heading.map_or("", |index| keys[index].as_str());

        let mut tasks: Vec<Task> = Vec::with_capacity(self.tasks.len());
        let mut occurrences: HashMap<(String, String), usize> = HashMap::new();
        for raw in self.tasks {
            let mut content = raw.content.as_str();
            // "- [x] [x] **1.1.1** ..." (a tool's double checkbox).
            while let Some((_, rest)) = line::checkbox(content) {
                content = rest;
            }
            let title = read_title(content);
            let status = resolve_status(raw.checkbox_status, title.status);
            if status != title.status.unwrap_or(status) {
                let message = format!(
                    "checkbox [{}] says {} but the text says {}: keeping {}",
                    raw.checkbox_raw,
                    raw.checkbox_status.as_str(),
                    title.status.map_or("", Status::as_str),
                    status.as_str()
                );
                diagnostics.push(Diagnostic {
                    line: raw.line,
                    kind: DiagnosticKind::StatusConflict,
                    message,
                });
            }
            let mut meta = Metadata::default();
            meta.scan(&plain_text(content, CodeSpans::Drop));
            for line in &raw.body {
                meta.scan(&plain_text(line, CodeSpans::Drop));
            }
            let parent = raw.parent.map(|index| &tasks[index]);
            let priority = meta
                .priority
                .or_else(|| parent.and_then(|p| p.priority))
                .or_else(|| section_chain(&headings, raw.heading).find_map(|h| h.meta.priority));
            let mvp = meta.mvp
                || parent.is_some_and(|p| p.mvp)
                || section_chain(&headings, raw.heading).any(|h| h.meta.mvp);
            let scope = parent.map_or_else(|| key_of(raw.heading).to_owned(), |p| p.id.clone());
            let key = identity_key(&title.bare);
            let occurrence = occurrences.entry((scope.clone(), key.clone())).or_default();
            *occurrence += 1;
            let id = stable_id("task", &[source, &scope, &key, &occurrence.to_string()]);
            let body = raw.body.join("\n");
            tasks.push(Task {
                text_hash: content_hash(&[&title.bare, &body]),
                id,
                title: title.bare,
                title_raw: raw.content_raw,
                status,
                status_raw: raw.checkbox_raw,
                status_text: title.status,
                number: title.number,
                depth: parent.map_or(0, |p| p.depth + 1),
                parent_id: parent.map(|p| p.id.clone()),
                parent: raw.parent,
                section_path: path_of(raw.heading),
                heading: raw.heading,
                line: raw.line,
                body,
                meta,
                priority,
                mvp,
            });
        }

        let mut passage_occurrences: HashMap<(Option<usize>, String), usize> = HashMap::new();
        let passages = pack(
            &self.blocks,
            options.max_passage_tokens,
            options.count_tokens,
        )
        .into_iter()
        .map(|piece| {
            let text_hash = content_hash(&[&piece.text]);
            let occurrence = passage_occurrences
                .entry((piece.heading, text_hash.clone()))
                .or_default();
            *occurrence += 1;
            Passage {
                id: stable_id(
                    "passage",
                    &[
                        source,
                        key_of(piece.heading),
                        &text_hash,
                        &occurrence.to_string(),
                    ],
                ),
                text_hash,
                text: piece.text,
                section_path: path_of(piece.heading),
                heading: piece.heading,
                line_start: piece.first_line,
                line_end: piece.last_line,
                tokens: piece.tokens,
            }
        })
        .collect();

        let progress = self
            .progress
            .into_iter()
            .map(|raw| {
                let top_level = raw.heading.is_none_or(|index| headings[index].level == 1);
                Progress {
                    line: raw.line,
                    percent: raw.percent,
                    scope: if raw.global || top_level {
                        ProgressScope::File
                    } else {
                        ProgressScope::Section
                    },
                    section_path: path_of(raw.heading),
                }
            })
            .collect();
        diagnostics.sort_by_key(|diagnostic| diagnostic.line);
        Document {
            source: source.to_owned(),
            encoding,
            lines: self.raw_lines.len(),
            tasks,
            headings,
            passages,
            progress,
            repairs,
            diagnostics,
        }
    }
}

/// The checkbox decides done against not done (it is the author's explicit act); words
/// and emoji refine an open box into in progress, blocked or cancelled.
fn resolve_status(checkbox: Status, text: Option<Status>) -> Status {
    match (checkbox, text) {
        (Status::Open, Some(text)) if text != Status::Done => text,
        _ => checkbox,
    }
}

fn finish_headings(raw: Vec<RawHeading>) -> Vec<Heading> {
    raw.into_iter()
        .map(|heading| {
            let (checkbox_status, text) = match line::checkbox(&heading.text) {
                Some((checkbox, rest)) => (Some(checkbox.status), rest),
                None => (None, heading.text.as_str()),
            };
            let title = read_title(text);
            Heading {
                level: heading.level,
                title: title.display,
                title_raw: heading.text_raw,
                number: title.number,
                status: checkbox_status.or(title.status),
                line: heading.line,
                parent: heading.parent,
                meta: heading.meta,
            }
        })
        .collect()
}

fn section_chain(headings: &[Heading], start: Option<usize>) -> impl Iterator<Item = &Heading> {
    std::iter::successors(start, |&index| headings[index].parent).map(|index| &headings[index])
}

fn section_path(headings: &[Heading], start: Option<usize>) -> Vec<String> {
    let mut path: Vec<String> = section_chain(headings, start)
        .map(|h| h.title.clone())
        .collect();
    path.reverse();
    path
}
