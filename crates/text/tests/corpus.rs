//! The parser on the shared corpus (245 real plans), held against a line-level oracle
//! written independently of it, and the repair of double-encoded text measured.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mnemo_testkit::shared_dir;
use mnemo_text::{Document, ParseOptions, Status, parse_file};
use regex::Regex;

fn corpus_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
            panic!("cannot read {} (set MNEMO_SHARED_DIR): {e}", dir.display())
        });
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "md") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&shared_dir().join("corpus"), &mut files);
    files.sort();
    assert!(
        files.len() >= 245,
        "the shared corpus has 245+ Markdown files, found {}",
        files.len()
    );
    files
}

fn parse(path: &Path) -> Document {
    parse_file(path, &path.display().to_string(), &ParseOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checkbox lines outside fences, counted line by line without any notion of nesting,
/// headings or markup: (tasks, checked).
///
/// The rules, which are the parser's contract too: a fence is a line starting (after
/// blockquote markers and any indentation) with three or more backticks or tildes (a
/// backtick line with another backtick after the marker is inline code); the same
/// character at least as many times closes it, whatever follows (authors' converters
/// write closers like ```` ```plaintext ````); a checkbox item written after a closer on
/// the same line counts. A checkbox line is a list marker (`-`, `*`, `+`, `1.`, `1)`),
/// whitespace, a checkbox and whitespace or the end of the line.
fn oracle(path: &Path) -> (usize, usize) {
    let checkbox = Regex::new(
        r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\[( |x|X|✓|✔|✅|☑|~|/|🔄|⏳|🚧|-|❌|✗|✘|!|⛔|🚫|\?|>|<|(?i:ok|done|wip|todo))\uFE0F?\]([ \t]|$)",
    )
    .expect("oracle regex");
    let done = |mark: &str| {
        matches!(
            mark.to_lowercase().as_str(),
            "x" | "✓" | "✔" | "✅" | "☑" | "ok" | "done"
        )
    };
    let bytes = std::fs::read(path).expect("read corpus file");
    let text =
        String::from_utf8_lossy(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes)).into_owned();
    let (mut tasks, mut checked) = (0, 0);
    let mut fence: Option<(char, usize)> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut content = line;
        while let Some(rest) = content.trim_start_matches([' ', '\t']).strip_prefix('>') {
            content = rest;
        }
        let trimmed = content.trim_start_matches([' ', '\t']);
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |m| trimmed.chars().take_while(|c| *c == m).count());
        let after = marker.map_or("", |m| &trimmed[run * m.len_utf8()..]);
        let is_fence = run >= 3 && !(marker == Some('`') && after.contains('`'));
        let counted = if is_fence {
            match fence {
                None => {
                    fence = marker.map(|m| (m, run));
                    None
                }
                Some((m, len)) if Some(m) == marker && run >= len => {
                    fence = None;
                    checkbox.captures(after.trim_start())
                }
                Some(_) => None,
            }
        } else if fence.is_none() {
            checkbox.captures(content)
        } else {
            None
        };
        if let Some(caps) = counted {
            tasks += 1;
            checked += usize::from(done(&caps[1]));
        }
    }
    (tasks, checked)
}

#[test]
fn every_checkbox_line_outside_fences_is_a_task_file_by_file() {
    let mut mismatches = Vec::new();
    let (mut total, mut total_done) = (0, 0);
    for path in corpus_files() {
        let document = parse(&path);
        let (expected, expected_done) = oracle(&path);
        let done = document.count_status(Status::Done);
        if document.tasks.len() != expected || done != expected_done {
            mismatches.push(format!(
                "{}: parser {} tasks ({done} done), oracle {expected} ({expected_done} done)",
                path.display(),
                document.tasks.len()
            ));
        }
        total += expected;
        total_done += expected_done;
    }
    println!("corpus: {total} tasks, {total_done} done, by the oracle");
    assert!(
        mismatches.is_empty(),
        "{} files disagree:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(
        total > 30_000,
        "the corpus holds over 30,000 checkbox lines, counted {total}"
    );
}

/// Signatures of UTF-8 read as Windows-1252 (`é` → `Ã©`, `’` → `â€™`, `🚀` → `ðŸš€`).
fn mojibake() -> Regex {
    Regex::new(r"Ã[\u{80}-\u{BF}\u{152}\u{153}\u{160}\u{161}\u{178}\u{17D}\u{17E}\u{192}\u{2C6}\u{2DC}\u{2013}-\u{203A}\u{20AC}\u{2122} ]|â€|Â[\u{A0}-\u{BF}]|ðŸ").expect("mojibake regex")
}

#[test]
fn no_title_keeps_a_double_encoding_unless_its_bytes_were_lost() {
    let signature = mojibake();
    let (mut repaired, mut left, mut damaged_files) = (0, 0, 0);
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    let mut offenders = Vec::new();
    for path in corpus_files() {
        let document = parse(&path);
        repaired += document.repairs.count;
        left += document.repairs.left.len();
        damaged_files += usize::from(document.repairs.count > 0);
        for leftover in &document.repairs.left {
            *reasons.entry(leftover.reason.describe()).or_default() += 1;
        }
        for task in &document.tasks {
            if signature.is_match(&task.title) {
                let explained = document.repairs.left.iter().any(|l| l.line == task.line);
                if !explained {
                    offenders.push(format!("{}:{}: {}", path.display(), task.line, task.title));
                }
            }
        }
    }
    println!(
        "repairs: {repaired} characters restored in {damaged_files} files; {left} sequences left"
    );
    for (reason, count) in &reasons {
        println!("  left {count}: {reason}");
    }
    assert!(
        repaired > 10_000,
        "the corpus has thousands of damaged characters; repaired {repaired}"
    );
    assert!(
        offenders.is_empty(),
        "titles still double-encoded without a reason:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn seeds_double_encoded_read_as_their_authors_wrote() {
    let seeds = shared_dir().join("seeds");
    let signature = mojibake();
    for name in [
        "002_9d49f9aeb5c21e00.txt",
        "003_80cfca79f2c9e38b.txt",
        "004_3c5a10db390ed026.txt",
    ] {
        let path = seeds.join(name);
        let document = parse(&path);
        assert!(
            document.repairs.count > 100,
            "{name}: {} repairs",
            document.repairs.count
        );
        for heading in &document.headings {
            assert!(
                !signature.is_match(&heading.title),
                "{name}:{}: {}",
                heading.line,
                heading.title
            );
        }
    }
}
