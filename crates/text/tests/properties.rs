//! Properties that hold for any input: no panic, determinism, round trips, stable ids.

use mnemo_text::{Document, ParseOptions, Status, Task, parse_bytes, parse_str};
use proptest::prelude::*;

fn parse(text: &str) -> Document {
    parse_str("plan.md", text, &ParseOptions::default())
}

/// Markdown-ish lines: the constructs the parser cares about, mixed with noise.
fn markdown_line() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..4usize, "[ xX~!/-]", "[a-zA-Zé ]{0,20}")
            .prop_map(|(depth, mark, text)| format!("{}- [{mark}] {text}", "  ".repeat(depth))),
        (1..7usize, "[a-zA-Z0-9 .]{0,20}")
            .prop_map(|(level, text)| format!("{} {text}", "#".repeat(level))),
        Just("```".to_owned()),
        Just("~~~~".to_owned()),
        Just(String::new()),
        Just("| [x] | cell |".to_owned()),
        Just("> - [ ] quoted".to_owned()),
        "[ -~éÃ©â€™✅🔥\\t>]{0,40}",
    ]
}

fn markdown() -> impl Strategy<Value = String> {
    prop::collection::vec(markdown_line(), 0..40).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_parse_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_bytes("any", &bytes, &ParseOptions::default());
    }

    #[test]
    fn any_markdown_parses_without_panic_and_the_same_twice(text in markdown()) {
        let first = parse(&text);
        let second = parse(&text);
        prop_assert_eq!(first, second);
    }

    #[test]
    fn passages_respect_the_limit(text in markdown(), limit in 1..64usize) {
        let options = ParseOptions { max_passage_tokens: limit, ..ParseOptions::default() };
        let document = parse_str("plan.md", &text, &options);
        for passage in &document.passages {
            // A single word longer than the limit is the one thing that cannot be cut.
            let words = passage.text.split_whitespace().count();
            prop_assert!(passage.tokens <= limit || words == 1, "{} > {limit}: {:?}", passage.tokens, passage.text);
        }
    }

    /// A task list written back as Markdown parses to the same tasks.
    #[test]
    fn reserialised_tasks_parse_the_same(text in markdown()) {
        let document = parse(&text);
        let written = serialise(&document.tasks);
        let again = parse(&written);
        prop_assert_eq!(summary(&document.tasks), summary(&again.tasks), "written:\n{}", written);
    }

    /// Lines added above a task that are not in its tree do not change its id.
    #[test]
    fn unrelated_lines_above_do_not_change_ids(text in markdown(), noise in prop::collection::vec("[a-z ]{1,30}", 1..5)) {
        let document = parse(&text);
        let prefixed = format!("{}\n\n{text}", noise.join("\n"));
        let again = parse(&prefixed);
        prop_assert_eq!(ids(&document), ids(&again));
    }
}

fn ids(document: &Document) -> Vec<String> {
    document.tasks.iter().map(|task| task.id.clone()).collect()
}

fn summary(tasks: &[Task]) -> Vec<(String, Status, usize, Option<String>)> {
    tasks
        .iter()
        .map(|task| {
            (
                task.title.clone(),
                task.status,
                task.depth,
                task.parent_id.clone(),
            )
        })
        .collect()
}

/// Tasks as a plain nested checkbox list, under their section headings.
fn serialise(tasks: &[Task]) -> String {
    let mut out = String::new();
    let mut section: Option<&[String]> = None;
    for task in tasks {
        if section != Some(task.section_path.as_slice()) {
            for (level, title) in task.section_path.iter().enumerate() {
                out.push_str(&format!("\n{} {title}\n\n", "#".repeat(level + 1)));
            }
            section = Some(task.section_path.as_slice());
        }
        let mark = match task.status {
            Status::Open => " ",
            Status::Done => "x",
            Status::InProgress => "~",
            Status::Blocked => "!",
            Status::Cancelled => "-",
        };
        out.push_str(&format!(
            "{}- [{mark}] {}\n",
            "  ".repeat(task.depth),
            task.title
        ));
    }
    out
}

#[test]
fn ids_survive_resaving_and_change_with_text_or_place() {
    let plan = "# Plan\n\n## Phase 1\n\n- [ ] Parent\n  - [ ] Child\n  - [x] Other child\n";
    let base = parse(plan);
    let id = |document: &Document, title: &str| {
        document
            .tasks
            .iter()
            .find(|task| task.title == title)
            .map(|task| task.id.clone())
            .expect(title)
    };
    // Re-saved: CRLF, a BOM, trailing spaces, a checkbox ticked.
    let resaved = format!(
        "\u{FEFF}{}",
        plan.replace('\n', "  \r\n")
            .replace("[ ] Child", "[x] Child")
    );
    let resaved =
        parse_bytes("plan.md", resaved.as_bytes(), &ParseOptions::default()).expect("text");
    for title in ["Parent", "Child", "Other child"] {
        assert_eq!(id(&base, title), id(&resaved, title), "{title}");
    }
    // Double-encoded and then repaired: the same ids as the clean file.
    let accents = parse("# Étape\n\n- [ ] Créer l’index\n");
    let damaged = parse("# Ã‰tape\n\n- [ ] CrÃ©er lâ€™index\n");
    assert_eq!(ids(&accents), ids(&damaged));
    // Text changed, parent changed, section changed: new ids.
    let edited = parse(&plan.replace("- [ ] Child", "- [ ] Child renamed"));
    assert!(
        edited
            .tasks
            .iter()
            .all(|task| task.id != id(&base, "Child"))
    );
    let moved = parse(&plan.replace("  - [ ] Child", "- [ ] Child"));
    assert_ne!(id(&moved, "Child"), id(&base, "Child"));
    let other_section = parse(&plan.replace("Phase 1", "Phase 2"));
    assert_ne!(id(&other_section, "Parent"), id(&base, "Parent"));
    // A file elsewhere in the tree: other ids.
    let elsewhere = parse_str("other.md", plan, &ParseOptions::default());
    assert_ne!(ids(&elsewhere), ids(&base));
    // Identical siblings stay distinct.
    let twins = parse("- [ ] Same\n- [ ] Same\n");
    assert_ne!(twins.tasks[0].id, twins.tasks[1].id);
}

#[test]
fn text_hash_follows_the_words_not_the_status() {
    let open = parse("- [ ] Écrire les tests\n");
    let done = parse("- [x] ✅ Écrire les tests\n");
    let other = parse("- [ ] Écrire la doc\n");
    assert_eq!(open.tasks[0].text_hash, done.tasks[0].text_hash);
    assert_ne!(open.tasks[0].text_hash, other.tasks[0].text_hash);
}
