//! One line of Markdown to plain text, and the words authors put around a task's title:
//! status markers (`✅ **TERMINÉ** -`) and numbers (`**1.2.3**`, `Micro-étape 2.1.2.1:`).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

use crate::Status;

/// What to do with `code spans`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeSpans {
    /// Keep their text (titles: `Renommer `foo`` reads "Renommer foo").
    Keep,
    /// Drop them (metadata: `go get x@latest` names no owner).
    Drop,
}

/// Removes inline markup: emphasis, code ticks, links and images (their text stays),
/// HTML tags, heading anchors (`{#id}`), and collapses whitespace.
pub(crate) fn plain_text(markdown: &str, code: CodeSpans) -> String {
    static LINK: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"!?\[([^\]\n]*)\]\([^)\n]*\)").expect("static regex"));
    // Only HTML's own inline tags: `<mode>` or `<branch-name>` are authors' placeholders.
    static TAG: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)</?(?:a|b|br|i|u|p|em|strong|span|div|img|sup|sub|code|kbd|small|font|center|details|summary|mark|del|ins|s)\b[^<>\n]*/?>")
            .expect("static regex")
    });
    static ANCHOR: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\{#[^}\s]*\}").expect("static regex"));
    static CODE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"`+([^`]*)`+").expect("static regex"));

    // The checks before each pattern keep the common line (no markup of that kind) from
    // paying for a regex scan.
    let text: Cow<'_, str> = if markdown.contains('`') {
        CODE.replace_all(markdown, |caps: &regex::Captures<'_>| match code {
            CodeSpans::Keep => caps[1].to_owned(),
            CodeSpans::Drop => " ".to_owned(),
        })
    } else {
        Cow::Borrowed(markdown)
    };
    let text = replace_where(text, "](", &LINK, "$1");
    let text = replace_where(text, "<", &TAG, " ");
    let text = replace_where(text, "{#", &ANCHOR, " ");
    if !text.contains(['*', '_', '~']) {
        return text.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if is_emphasis_marker(&chars, i) {
            continue;
        }
        if c.is_whitespace() {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// `pattern` replaced in `text`, searched for only where `mark` (which every match
/// contains) appears.
fn replace_where<'a>(text: Cow<'a, str>, mark: &str, pattern: &Regex, with: &str) -> Cow<'a, str> {
    if text.contains(mark) {
        Cow::Owned(pattern.replace_all(&text, with).into_owned())
    } else {
        text
    }
}

/// `*`, `_` and `~~` used as emphasis: a run of markers touching a word on one side only,
/// or standing alone. Underscores inside words (`snake_case`) and `2 * 3` stay.
fn is_emphasis_marker(chars: &[char], i: usize) -> bool {
    let c = chars[i];
    if !matches!(c, '*' | '_' | '~') {
        return false;
    }
    let mut start = i;
    while start > 0 && chars[start - 1] == c {
        start -= 1;
    }
    let mut end = i + 1;
    while end < chars.len() && chars[end] == c {
        end += 1;
    }
    if c == '~' && end - start < 2 {
        return false;
    }
    let before = start.checked_sub(1).map(|j| chars[j]);
    let after = chars.get(end).copied();
    let wordish = |ch: Option<char>| ch.is_some_and(|ch| ch.is_alphanumeric());
    match c {
        '_' => !(wordish(before) && wordish(after)),
        _ => {
            let space_before = before.is_none_or(char::is_whitespace);
            let space_after = after.is_none_or(char::is_whitespace);
            // `2 * 3`: a lone star between spaces is arithmetic, not emphasis.
            !(space_before && space_after && end - start == 1)
        }
    }
}

/// Status words authors write in capitals, and status emoji.
const STATUS_WORDS: &[(&str, Status)] = &[
    ("COMPLETED", Status::Done),
    ("COMPLETE", Status::Done),
    ("COMPLÉTÉE", Status::Done),
    ("COMPLÉTÉ", Status::Done),
    ("TERMINÉE", Status::Done),
    ("TERMINÉ", Status::Done),
    ("TERMINE", Status::Done),
    ("ACHEVÉ", Status::Done),
    ("RÉSOLU", Status::Done),
    ("RÉPARÉ", Status::Done),
    ("DONE", Status::Done),
    ("FAIT", Status::Done),
    ("FIXED", Status::Done),
    ("EN COURS", Status::InProgress),
    ("IN PROGRESS", Status::InProgress),
    ("WIP", Status::InProgress),
    ("ONGOING", Status::InProgress),
    ("BLOQUÉE", Status::Blocked),
    ("BLOQUÉ", Status::Blocked),
    ("BLOCKED", Status::Blocked),
    ("EN ATTENTE", Status::Blocked),
    ("ON HOLD", Status::Blocked),
    ("ANNULÉE", Status::Cancelled),
    ("ANNULÉ", Status::Cancelled),
    ("ABANDONNÉ", Status::Cancelled),
    ("CANCELLED", Status::Cancelled),
    ("CANCELED", Status::Cancelled),
    ("À FAIRE", Status::Open),
    ("TODO", Status::Open),
];

const STATUS_EMOJI: &[(char, Status)] = &[
    ('✅', Status::Done),
    ('✔', Status::Done),
    ('✓', Status::Done),
    ('☑', Status::Done),
    ('🔄', Status::InProgress),
    ('⏳', Status::InProgress),
    ('⌛', Status::InProgress),
    ('🚧', Status::InProgress),
    ('⛔', Status::Blocked),
    ('🚫', Status::Blocked),
    ('🛑', Status::Blocked),
    ('⏸', Status::Blocked),
    ('❌', Status::Cancelled),
    ('✖', Status::Cancelled),
    ('✗', Status::Cancelled),
];

/// Separators between markers and the title.
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '–' | '—' | ':' | '|' | '\u{FE0F}' | '(' | ')' | '[' | ']'
        )
}

/// Strips status markers from the start of `text`; returns the rest and what they said.
pub(crate) fn take_leading_status(text: &str) -> (&str, Option<Status>) {
    let mut rest = text.trim_start_matches(is_separator);
    let mut found = None;
    while let Some((status, after)) = status_marker_at_start(rest) {
        found = found.or(Some(status));
        rest = after.trim_start_matches(is_separator);
    }
    if found.is_none() {
        return (text, None);
    }
    (rest, found)
}

/// Strips status markers from the end of `text` (`… ✅ RÉSOLU`, `… (COMPLÉTÉ)`).
pub(crate) fn take_trailing_status(text: &str) -> (&str, Option<Status>) {
    let mut rest = text.trim_end_matches(is_separator);
    let mut found = None;
    while let Some((status, before)) = status_marker_at_end(rest) {
        found = found.or(Some(status));
        rest = before.trim_end_matches(is_separator);
    }
    if found.is_none() {
        return (text, None);
    }
    (rest, found)
}

fn status_marker_at_start(text: &str) -> Option<(Status, &str)> {
    let first = text.chars().next()?;
    if let Some(&(_, status)) = STATUS_EMOJI.iter().find(|(emoji, _)| *emoji == first) {
        return Some((status, &text[first.len_utf8()..]));
    }
    STATUS_WORDS.iter().find_map(|&(word, status)| {
        let after = text.strip_prefix(word)?;
        ends_word(after).then_some((status, after))
    })
}

fn status_marker_at_end(text: &str) -> Option<(Status, &str)> {
    let last = text.chars().next_back()?;
    if let Some(&(_, status)) = STATUS_EMOJI.iter().find(|(emoji, _)| *emoji == last) {
        return Some((status, &text[..text.len() - last.len_utf8()]));
    }
    STATUS_WORDS.iter().find_map(|&(word, status)| {
        let before = text.strip_suffix(word)?;
        starts_word(before).then_some((status, before))
    })
}

fn ends_word(after: &str) -> bool {
    after.chars().next().is_none_or(|c| !c.is_alphanumeric())
}

fn starts_word(before: &str) -> bool {
    before
        .chars()
        .next_back()
        .is_none_or(|c| !c.is_alphanumeric())
}

/// A task's or heading's own number at the start of its plain text, and the rest.
pub(crate) fn take_number(text: &str) -> (Option<String>, &str) {
    static KEYWORD_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)^(?:(?:micro|nano|sous|sub)[- ]?)?(?:étape|etape|phase|tâche|tache|step|task|section|partie|part|pilier|jalon|milestone|lot)(?:\s+[\p{L}]+)?\s*(?:n°\s*)?(\d+(?:\.\d+)*)\.?(?:\s*[:\-–—.)]\s*|\s+|$)",
        )
        .expect("static regex")
    });
    static DOTTED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(\d+(?:\.\d+)+)\.?(?:\s*[:\-–—)]\s*|\s+|$)").expect("static regex")
    });
    static SINGLE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^(\d+)[.)](?:\s+|$)").expect("static regex"));
    for pattern in [&*KEYWORD_NUMBER, &*DOTTED, &*SINGLE] {
        if let Some(caps) = pattern.captures(text) {
            let whole = caps.get(0).map_or(0, |m| m.end());
            return (Some(caps[1].to_owned()), &text[whole..]);
        }
    }
    (None, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_removed_and_words_kept() {
        assert_eq!(
            plain_text(
                "**1.2.3** Renommer `mode-manager` en [lien](x.md) *vite*",
                CodeSpans::Keep
            ),
            "1.2.3 Renommer mode-manager en lien vite"
        );
        assert_eq!(
            plain_text("snake_case_name 2 * 3 ~~old~~", CodeSpans::Keep),
            "snake_case_name 2 * 3 old"
        );
        assert_eq!(plain_text("go `x@latest` now", CodeSpans::Drop), "go now");
        assert_eq!(
            plain_text("Phase 5 {#phase-5}<br>", CodeSpans::Keep),
            "Phase 5"
        );
    }

    #[test]
    fn status_markers_are_found_at_both_ends() {
        assert_eq!(
            take_leading_status("✅ COMPLETE - Créer la branche"),
            ("Créer la branche", Some(Status::Done))
        );
        assert_eq!(
            take_trailing_status("Problèmes système ⚠️ EN COURS"),
            ("Problèmes système ⚠", Some(Status::InProgress))
        );
        assert_eq!(
            take_trailing_status("Écosystème Go (COMPLÉTÉ)"),
            ("Écosystème Go", Some(Status::Done))
        );
        assert_eq!(
            take_leading_status("DONEGAL county"),
            ("DONEGAL county", None)
        );
        assert_eq!(
            take_leading_status("Tests en cours"),
            ("Tests en cours", None)
        );
    }

    #[test]
    fn numbers_in_the_forms_authors_use() {
        assert_eq!(take_number("1.2.3 Créer"), (Some("1.2.3".into()), "Créer"));
        assert_eq!(
            take_number("Micro-étape 2.1.2.1: Tests"),
            (Some("2.1.2.1".into()), "Tests")
        );
        assert_eq!(
            take_number("Sous-étape 7.1.3 : Nettoyage"),
            (Some("7.1.3".into()), "Nettoyage")
        );
        assert_eq!(
            take_number("Nano-étape 3.1.3.2.1.1 : Rédiger"),
            (Some("3.1.3.2.1.1".into()), "Rédiger")
        );
        assert_eq!(
            take_number("Sous-tâche 4.2.4: Tests"),
            (Some("4.2.4".into()), "Tests")
        );
        assert_eq!(
            take_number("Étape 3 : Déployer"),
            (Some("3".into()), "Déployer")
        );
        assert_eq!(
            take_number("Phase 1: Analyse"),
            (Some("1".into()), "Analyse")
        );
        assert_eq!(take_number("2. Guides"), (Some("2".into()), "Guides"));
        assert_eq!(
            take_number("Tâche Atomique 001: Scanner"),
            (Some("001".into()), "Scanner")
        );
        assert_eq!(take_number("3 fichiers créés"), (None, "3 fichiers créés"));
        assert_eq!(take_number("2.5h de tests"), (None, "2.5h de tests"));
    }
}
