//! Golden tests: real plans chosen for their difficulty, rendered as text and compared
//! with reviewed snapshots (`tests/snapshots`). To review a change: run the tests with
//! `INSTA_UPDATE=always`, read `git diff`, commit what is right.

use std::fmt::Write as _;

use mnemo_testkit::shared_dir;
use mnemo_text::{Document, ParseOptions, Status, parse_bytes};

/// Lines shown from a file: all, or the tasks, headings, progress lines and passages that
/// start inside `lines`.
struct Case {
    snapshot: &'static str,
    path: &'static str,
    lines: Option<(usize, usize)>,
}

const ROADMAPS: &str = "corpus/email-sender-1/roadmaps";

const CASES: &[Case] = &[
    // `[OK]` checkboxes, `**PRIORITAIRE**`, estimates in words.
    Case {
        snapshot: "journal_ok_markers",
        path: "journal/journal.md",
        lines: None,
    },
    // `[~]`, `#priority:high` tags, `task-NNN` names.
    Case {
        snapshot: "cognitive_tilde_and_tags",
        path: "examples/example-cognitive-roadmap.md",
        lines: None,
    },
    // Checkboxes in headings (`## [x] 1. ...`): headings with a status, not tasks.
    Case {
        snapshot: "heading_checkboxes",
        path: "plans/consolidated/plan-dev-v69-documentation-complete.md",
        lines: None,
    },
    // `- [1] Phase 1` references: not tasks.
    Case {
        snapshot: "bracket_numbers_not_tasks",
        path: "plans/consolidated/plan-dev-v42-error-manager.md",
        lines: Some((1, 140)),
    },
    // U+FFFD in the file: unrepairable, reported.
    Case {
        snapshot: "replacement_characters",
        path: "journal/entries/2025-04-05-probl-me-identifi.md",
        lines: None,
    },
    // CRLF line endings.
    Case {
        snapshot: "crlf",
        path: "plans/consolidated/plan-dev-v35-agent-notion-terminal-avec--mcp-go.md",
        lines: None,
    },
    // CRLF and a fence never closed.
    Case {
        snapshot: "crlf_unclosed_fence",
        path: "plans/consolidated/plan-dev-v36-Orchestration-et-Parrellisation-go.md",
        lines: None,
    },
    // 75 checkboxes, all inside fences (Go code writing Markdown): no task at all.
    Case {
        snapshot: "checkboxes_in_fences",
        path: "plans/consolidated/plan-dev-v51-ecosysteme-harmoniser-plan-dev.md",
        lines: None,
    },
    // Double-encoded UTF-8 throughout (`DÃ©finir`, `dâ€™Ã©volution`).
    Case {
        snapshot: "mojibake_plan",
        path: "plans/consolidated/plan-dev-v29-modes-harmonisation copy-utf8.md",
        lines: Some((380, 486)),
    },
    Case {
        snapshot: "mojibake_journal",
        path: "journal/journal_de_bord_test.md",
        lines: Some((1, 140)),
    },
    // Priority, estimate and MVP given to sections, inherited by their tasks.
    Case {
        snapshot: "section_metadata",
        path: "plans/consolidated/plan-dev-v26.md",
        lines: Some((1, 130)),
    },
    // ```` ```plaintext ```` closers, a task written after a closer, `✅ **COMPLETE** -`
    // before `Micro-étape 4.2.2.2:`.
    Case {
        snapshot: "fence_closer_then_task",
        path: "plans/consolidated/plan-dev-v55-planning-ecosystem-sync.md",
        lines: Some((1150, 1300)),
    },
    // Twenty-eight levels of nesting.
    Case {
        snapshot: "deep_nesting",
        path: "plans/completed/PLAN-dev-v7-IMPLEMENTATION.md",
        lines: Some((1, 120)),
    },
    // `[✅]` checkboxes and progress in titles.
    Case {
        snapshot: "emoji_checkbox",
        path: "plans/consolidated/plan-dev-v49-integration-new-tools-Toolkit.md",
        lines: Some((1, 60)),
    },
    // Numbered-list checkboxes (`1. [x] **Pré**: ...`).
    Case {
        snapshot: "ordered_list_tasks",
        path: "plans/consolidated/plan-dev-v65B-extensions-manager-hybride.md",
        lines: Some((540, 600)),
    },
    // `- [0] **NOUVEAU** ... (COMPLÉTÉ)` and status words at both ends.
    Case {
        snapshot: "status_words",
        path: "plans/consolidated/plan-dev-v39-amelioration-plan-dev-ameliore.md",
        lines: Some((1, 90)),
    },
    // The seed plan v57: French, double-encoded, phases and micro-steps.
    Case {
        snapshot: "seed_plan_v57",
        path: "../../../seeds/002_9d49f9aeb5c21e00.txt",
        lines: Some((1, 150)),
    },
];

fn render(document: &Document, lines: Option<(usize, usize)>) -> String {
    let shown = |line: usize| lines.is_none_or(|(first, last)| (first..=last).contains(&line));
    let mut out = String::new();
    let count = |status| document.count_status(status);
    let _ = writeln!(
        out,
        "encoding {:?} · {} lines · {} tasks (open {}, in progress {}, blocked {}, cancelled {}, done {}) · {} headings · {} passages · {} repairs, {} left",
        document.encoding,
        document.lines,
        document.tasks.len(),
        count(Status::Open),
        count(Status::InProgress),
        count(Status::Blocked),
        count(Status::Cancelled),
        count(Status::Done),
        document.headings.len(),
        document.passages.len(),
        document.repairs.count,
        document.repairs.left.len(),
    );
    if let Some((first, last)) = lines {
        let _ = writeln!(out, "showing lines {first}..={last}");
    }
    for diagnostic in document.diagnostics.iter().filter(|d| shown(d.line)) {
        let _ = writeln!(
            out,
            "! L{} {:?}: {}",
            diagnostic.line, diagnostic.kind, diagnostic.message
        );
    }
    for leftover in document.repairs.left.iter().filter(|l| shown(l.line)) {
        let _ = writeln!(
            out,
            "? L{} {:?}: {}",
            leftover.line, leftover.reason, leftover.sequence
        );
    }
    out.push_str("\nheadings\n");
    for heading in document.headings.iter().filter(|h| shown(h.line)) {
        let _ = write!(
            out,
            "L{} {} {}",
            heading.line,
            "#".repeat(heading.level),
            heading.title
        );
        if let Some(number) = &heading.number {
            let _ = write!(out, "  [n {number}]");
        }
        if let Some(status) = heading.status {
            let _ = write!(out, "  [{}]", status.as_str());
        }
        if let Some(priority) = heading.meta.priority {
            let _ = write!(out, "  [{}]", priority.as_str());
        }
        if heading.meta.mvp {
            out.push_str("  [mvp]");
        }
        out.push('\n');
    }
    out.push_str("\ntasks\n");
    for task in document.tasks.iter().filter(|t| shown(t.line)) {
        let _ = write!(
            out,
            "L{} [{}] {:<11} {}",
            task.line,
            task.status_raw,
            task.status.as_str(),
            "  ".repeat(task.depth)
        );
        if let Some(number) = &task.number {
            let _ = write!(out, "{number} | ");
        }
        out.push_str(&task.title);
        let mut tags = Vec::new();
        if let Some(parent) = task.parent {
            tags.push(format!("parent L{}", document.tasks[parent].line));
        }
        if let Some(status) = task.status_text {
            tags.push(format!("text {}", status.as_str()));
        }
        if let Some(priority) = task.priority {
            tags.push(priority.as_str().to_owned());
        }
        if let Some(estimate) = &task.meta.estimate {
            tags.push(format!("{}h", estimate.hours));
        }
        if task.mvp {
            tags.push("mvp".to_owned());
        }
        tags.extend(task.meta.tags.iter().map(|tag| format!("#{tag}")));
        tags.extend(task.meta.owners.iter().map(|owner| format!("@{owner}")));
        tags.extend(task.meta.dates.iter().cloned());
        if !task.body.is_empty() {
            tags.push(format!("body {} lines", task.body.lines().count()));
        }
        if !tags.is_empty() {
            let _ = write!(out, "  {{{}}}", tags.join(", "));
        }
        out.push('\n');
    }
    out.push_str("\nprogress\n");
    for progress in document.progress.iter().filter(|p| shown(p.line)) {
        let _ = writeln!(
            out,
            "L{} {:?} {}% in {}",
            progress.line,
            progress.scope,
            progress.percent,
            progress.section_path.join(" > ")
        );
    }
    out.push_str("\npassages\n");
    for passage in document.passages.iter().filter(|p| shown(p.line_start)) {
        let start: String = passage
            .text
            .chars()
            .take(70)
            .collect::<String>()
            .replace('\n', " ⏎ ");
        let _ = writeln!(
            out,
            "L{}-{} {} pieces: {start}",
            passage.line_start, passage.line_end, passage.tokens
        );
    }
    out
}

#[test]
fn real_plans_parse_as_reviewed() {
    let shared = shared_dir();
    for case in CASES {
        let path = shared.join(ROADMAPS).join(case.path);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("cannot read {} (set MNEMO_SHARED_DIR): {e}", path.display())
        });
        let document = parse_bytes(case.path, &bytes, &ParseOptions::default()).expect("text file");
        insta::assert_snapshot!(case.snapshot, render(&document, case.lines));
    }
}

/// Inputs the corpus lacks: other encodings, tabs, blockquotes, setext headings.
#[test]
fn synthetic_inputs_parse_as_reviewed() {
    let cases: &[(&str, &[u8])] = &[
        ("bom_crlf", b"\xEF\xBB\xBF# Plan\r\n\r\n- [ ] one\r\n  - [x] two\r\n"),
        ("windows_1252", b"# \xC9tapes\n\n- [ ] Cr\xE9er l\x92index (2h)\n"),
        ("utf16le", b"\xFF\xFE#\0 \0P\0\n\0-\0 \0[\0 \0]\0 \0a\0\n\0"),
        (
            "tabs_quotes_setext",
            "Plan\n====\n\n> - [ ] quoted\n>\t- [x] quoted child\n\nPart two\n--------\n\n* [-] dropped\n\t* [/] half\n+ [!] stuck @bob #infra 🔥\n".as_bytes(),
        ),
        (
            "odd_indentation_and_lazy_lines",
            "## Work\n\n- [ ] parent\n        - [ ] eight spaces in\n lazy continuation\n\n    - [x] after a blank, still a child\n\nProse ends the list.\n\n- [ ] new list\n".as_bytes(),
        ),
    ];
    for (name, bytes) in cases {
        let document = parse_bytes(name, bytes, &ParseOptions::default()).expect("text");
        insta::assert_snapshot!(*name, render(&document, None));
    }
}
