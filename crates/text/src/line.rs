//! What one line of Markdown is, judged on its own. The parser adds the context.

use std::borrow::Cow;

use crate::Status;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    Blank,
    Fence(Fence<'a>),
    Heading { level: usize, text: &'a str },
    ThematicBreak,
    ListItem(ListItem<'a>),
    TableRow,
    Text { indent: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fence<'a> {
    pub marker: char,
    pub len: usize,
    /// What follows the marker: a language on an opener; on a closer, authors' damage.
    pub info: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListItem<'a> {
    /// Column of the marker, tabs counted to the next multiple of 4.
    pub indent: usize,
    pub checkbox: Option<Checkbox<'a>>,
    /// The text after the marker (and after the checkbox, if any).
    pub content: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkbox<'a> {
    pub raw: &'a str,
    pub status: Status,
}

/// Blockquote markers (`> > text`) turned into spaces: a task quoted is still a task,
/// and a quote indented under a list item still belongs to that item.
pub(crate) fn dequote(line: &str) -> Cow<'_, str> {
    let mut end = 0;
    let mut rest = line;
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t']);
        match trimmed.strip_prefix('>') {
            Some(after) if rest.len() - trimmed.len() <= 3 || end == 0 => {
                end = line.len() - after.len();
                rest = after;
            }
            _ => break,
        }
    }
    if end == 0 {
        return Cow::Borrowed(line);
    }
    let prefix: String = line[..end]
        .chars()
        .map(|c| if c == '>' { ' ' } else { c })
        .collect();
    Cow::Owned(prefix + &line[end..])
}

pub(crate) fn indent_columns(line: &str) -> usize {
    let mut columns = 0;
    for c in line.chars() {
        match c {
            ' ' => columns += 1,
            '\t' => columns = (columns / 4 + 1) * 4,
            _ => break,
        }
    }
    columns
}

/// A fence marker at any indentation: authors indent fences inside list items freely.
pub(crate) fn fence(line: &str) -> Option<Fence<'_>> {
    let trimmed = line.trim_start_matches([' ', '\t']);
    let marker = trimmed.chars().next().filter(|c| matches!(c, '`' | '~'))?;
    let len = trimmed.chars().take_while(|&c| c == marker).count();
    if len < 3 {
        return None;
    }
    let info = trimmed[len..].trim();
    // ```code``` on one line is inline code, not a fence.
    if marker == '`' && info.contains('`') {
        return None;
    }
    Some(Fence { marker, len, info })
}

/// `line` must be [`dequote`]d.
pub(crate) fn classify(line: &str) -> Line<'_> {
    let trimmed = line.trim_start_matches([' ', '\t']);
    if trimmed.trim_end().is_empty() {
        return Line::Blank;
    }
    if let Some(fence) = fence(line) {
        return Line::Fence(fence);
    }
    let indent = indent_columns(line);
    if indent < 4
        && let Some(heading) = atx_heading(trimmed)
    {
        return heading;
    }
    if indent < 4 && is_thematic_break(trimmed) {
        return Line::ThematicBreak;
    }
    if let Some(item) = list_item(trimmed, indent) {
        return Line::ListItem(item);
    }
    if trimmed.starts_with('|') {
        return Line::TableRow;
    }
    Line::Text { indent }
}

fn atx_heading(trimmed: &str) -> Option<Line<'_>> {
    let level = trimmed.chars().take_while(|&c| c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &trimmed[level..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let text = rest.trim();
    // A closing run of #s is decoration, unless it is the whole text.
    let without_closing = text.trim_end_matches('#');
    let text = if without_closing.is_empty() || without_closing.ends_with([' ', '\t']) {
        without_closing.trim_end()
    } else {
        text
    };
    Some(Line::Heading { level, text })
}

fn is_thematic_break(trimmed: &str) -> bool {
    let mut marks = trimmed.chars().filter(|c| !c.is_whitespace());
    let Some(first) = marks.next().filter(|c| matches!(c, '-' | '*' | '_')) else {
        return false;
    };
    let mut count = 1;
    for c in marks {
        if c != first {
            return false;
        }
        count += 1;
    }
    count >= 3
}

fn list_item(trimmed: &str, indent: usize) -> Option<ListItem<'_>> {
    let marker_len = if trimmed.starts_with(['-', '*', '+']) {
        1
    } else {
        let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
        if !(1..=9).contains(&digits) || !trimmed[digits..].starts_with(['.', ')']) {
            return None;
        }
        digits + 1
    };
    let after = &trimmed[marker_len..];
    if !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    let content = after.trim();
    match checkbox(content) {
        Some((checkbox, rest)) => Some(ListItem {
            indent,
            checkbox: Some(checkbox),
            content: rest,
        }),
        None => Some(ListItem {
            indent,
            checkbox: None,
            content,
        }),
    }
}

/// `[ ]`, `[x]` and the variants authors use. Numbers (`[1]`), dates and links are not
/// checkboxes; the bracket must be followed by whitespace or the end of the line.
pub(crate) fn checkbox(content: &str) -> Option<(Checkbox<'_>, &str)> {
    let inner_and_rest = content.strip_prefix('[')?;
    let close = inner_and_rest
        .char_indices()
        .take(6)
        .find(|&(_, c)| c == ']')?
        .0;
    let raw = &inner_and_rest[..close];
    let rest = &inner_and_rest[close + 1..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let status = checkbox_status(raw)?;
    Some((Checkbox { raw, status }, rest.trim_start()))
}

pub(crate) fn checkbox_status(raw: &str) -> Option<Status> {
    let symbol = raw.trim_end_matches('\u{FE0F}');
    let status = match symbol {
        " " => Status::Open,
        "x" | "X" | "✓" | "✔" | "✅" | "☑" => Status::Done,
        "~" | "/" | "🔄" | "⏳" | "🚧" => Status::InProgress,
        "-" | "❌" | "✗" | "✘" => Status::Cancelled,
        "!" | "⛔" | "🚫" => Status::Blocked,
        "?" | ">" | "<" => Status::Open,
        _ => match symbol.to_ascii_uppercase().as_str() {
            "OK" | "DONE" => Status::Done,
            "WIP" => Status::InProgress,
            "TODO" => Status::Open,
            _ => return None,
        },
    };
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(line: &str) -> Option<(Status, String)> {
        match classify(&dequote(line)) {
            Line::ListItem(ListItem {
                checkbox: Some(checkbox),
                content,
                ..
            }) => Some((checkbox.status, content.to_owned())),
            _ => None,
        }
    }

    #[test]
    fn checkbox_variants() {
        assert_eq!(task("- [ ] a"), Some((Status::Open, "a".into())));
        assert_eq!(task("  * [x] b"), Some((Status::Done, "b".into())));
        assert_eq!(task("+ [X] c"), Some((Status::Done, "c".into())));
        assert_eq!(task("12. [✅] d"), Some((Status::Done, "d".into())));
        assert_eq!(task("1) [~] e"), Some((Status::InProgress, "e".into())));
        assert_eq!(task("- [-] f"), Some((Status::Cancelled, "f".into())));
        assert_eq!(task("- [!] g"), Some((Status::Blocked, "g".into())));
        assert_eq!(task("> - [OK] h"), Some((Status::Done, "h".into())));
        assert_eq!(task("\t\t- [ ]"), Some((Status::Open, "".into())));
        assert_eq!(
            task("          - [ ] deep"),
            Some((Status::Open, "deep".into()))
        );
    }

    #[test]
    fn quotes_keep_their_indentation() {
        assert_eq!(dequote("  > text"), "    text");
        assert_eq!(dequote("> > - [ ] a"), "    - [ ] a");
        assert_eq!(dequote("no quote > here"), "no quote > here");
        assert_eq!(dequote("a"), "a");
    }

    #[test]
    fn what_is_not_a_task() {
        for line in [
            "- [1] Phase 1",
            "- [2025-04-05] [entry](e.md)",
            "- [README](./README.md)",
            "- [x]done",
            "-[ ] no space",
            "| [x] | cell |",
            "## [x] heading",
            "[ ] not a list",
            "- []",
            "- **Précision :** `- [ ]`",
        ] {
            assert_eq!(task(line), None, "{line}");
        }
    }

    #[test]
    fn headings_breaks_fences() {
        assert_eq!(
            classify("## Phase 2 ##"),
            Line::Heading {
                level: 2,
                text: "Phase 2"
            }
        );
        assert_eq!(classify("#tag"), Line::Text { indent: 0 });
        assert_eq!(
            classify("# C#"),
            Line::Heading {
                level: 1,
                text: "C#"
            }
        );
        assert_eq!(classify("* * *"), Line::ThematicBreak);
        assert_eq!(classify("---"), Line::ThematicBreak);
        assert!(matches!(
            classify("    ```go"),
            Line::Fence(Fence {
                marker: '`',
                len: 3,
                info: "go"
            })
        ));
        assert!(matches!(classify("```go x```"), Line::Text { .. }));
        assert!(matches!(
            classify("~~~~"),
            Line::Fence(Fence {
                marker: '~',
                len: 4,
                ..
            })
        ));
    }
}
