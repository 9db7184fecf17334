//! Metadata authors write inside the text: priority, estimate, MVP, dates, owners, tags,
//! progress. Anything not recognised is simply text.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

/// `P0` (most urgent) to `P3`, whatever form the author used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Priority {
    P0,
    P1,
    P2,
    P3,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P0 => "P0",
            Self::P1 => "P1",
            Self::P2 => "P2",
            Self::P3 => "P3",
        }
    }

    fn from_level(level: u32) -> Option<Self> {
        match level {
            0 => Some(Self::P0),
            1 => Some(Self::P1),
            2 => Some(Self::P2),
            3 | 4 => Some(Self::P3),
            _ => None,
        }
    }

    fn from_word(word: &str) -> Option<Self> {
        let word = word.to_lowercase();
        match word.as_str() {
            "critique" | "critical" | "urgent" | "urgente" | "bloquant" | "highest" | "🔴"
            | "🔺" => Some(Self::P0),
            "haute" | "high" | "élevée" | "elevee" | "importante" | "important" | "🟠" => {
                Some(Self::P1)
            }
            "moyenne" | "medium" | "normale" | "normal" | "🟡" => Some(Self::P2),
            "basse" | "low" | "faible" | "lowest" | "🟢" => Some(Self::P3),
            _ => None,
        }
    }
}

/// A duration as written, and in hours (a day is 8 hours, a week 5 days).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub raw: String,
    pub hours: f64,
}

/// What one piece of text says about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metadata {
    pub priority: Option<Priority>,
    pub estimate: Option<Estimate>,
    pub mvp: bool,
    pub dates: Vec<String>,
    pub owners: Vec<String>,
    pub tags: Vec<String>,
}

impl Metadata {
    /// Adds what `text` (plain, code spans removed) says; the first value of a kind wins.
    pub(crate) fn scan(&mut self, text: &str) {
        // Each check before a pattern spares the common line a regex search.
        if self.priority.is_none() {
            self.priority = find_priority(text);
        }
        if self.estimate.is_none() && text.bytes().any(|b| b.is_ascii_digit()) {
            self.estimate = find_estimate(text);
        }
        self.mvp |= text.contains("MVP") && MVP.is_match(text);
        if text.contains(['-', '/']) && text.bytes().any(|b| b.is_ascii_digit()) {
            for date in find_dates(text) {
                push_unique(&mut self.dates, date);
            }
        }
        if !text.contains(['@', '#']) {
            return;
        }
        for caps in OWNER.captures_iter(text) {
            push_unique(&mut self.owners, caps[1].to_owned());
        }
        for caps in TAG.captures_iter(text) {
            let tag = caps[1].trim_end_matches(['.', ':', '-', '/']);
            if !tag.chars().all(|c| c.is_ascii_digit()) {
                push_unique(&mut self.tags, tag.to_owned());
            }
        }
    }

    /// Section metadata only comes from explicit fields (`Priorité : P1`) and `MVP`:
    /// a section's prose mentions `P2` or `2h` in passing far too often.
    pub(crate) fn scan_section(&mut self, text: &str) {
        if self.priority.is_none() && mentions_priority(text) {
            self.priority = labelled_priority(text);
        }
        self.mvp |= text.contains("MVP") && MVP.is_match(text);
    }
}

/// Whether a line can hold a labelled priority: spares the rest a regex search.
pub(crate) fn mentions_priority(text: &str) -> bool {
    text.contains("riorit") || text.contains("RIORIT")
}

fn push_unique(values: &mut Vec<String>, value: String) {
    if !values.contains(&value) {
        values.push(value);
    }
}

static MVP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\bMVP\b").expect("static regex"));
static OWNER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s(,])@([\p{L}][\p{L}\d_.-]*[\p{L}\d])").expect("static regex")
});
static TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s(,])#([\p{L}\d_][\p{L}\d_:/.-]*)").expect("static regex")
});

fn labelled_priority(text: &str) -> Option<Priority> {
    static LABELLED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)(?:priorit[ée]|priority)\s*[:=]?\s*(?:P([0-4])\b|([\p{L}]+|🔴|🟠|🟡|🟢))")
            .expect("static regex")
    });
    let caps = LABELLED.captures(text)?;
    if let Some(level) = caps.get(1) {
        return level.as_str().parse().ok().and_then(Priority::from_level);
    }
    caps.get(2)
        .and_then(|word| Priority::from_word(word.as_str()))
}

fn find_priority(text: &str) -> Option<Priority> {
    static LEVEL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\bP([0-4])\b").expect("static regex"));
    static TAGGED: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)#priority:(\w+)").expect("static regex"));
    static SHOUTED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b(CRITIQUE|CRITICAL|URGENT|PRIORITAIRE)\b").expect("static regex")
    });
    if mentions_priority(text)
        && let Some(priority) = labelled_priority(text)
    {
        return Some(priority);
    }
    if text.contains('P')
        && let Some(caps) = LEVEL.captures(text)
    {
        return caps[1].parse().ok().and_then(Priority::from_level);
    }
    if text.contains('#')
        && let Some(caps) = TAGGED.captures(text)
    {
        return Priority::from_word(&caps[1]);
    }
    if let Some(caps) = SHOUTED.captures(text) {
        return Some(if &caps[1] == "PRIORITAIRE" {
            Priority::P1
        } else {
            Priority::P0
        });
    }
    if text.is_ascii() {
        return None;
    }
    // The emoji of the Obsidian Tasks convention, and the fire authors use for "urgent".
    text.chars().find_map(|c| match c {
        '🔥' | '🔺' => Some(Priority::P0),
        '⏫' => Some(Priority::P1),
        '🔼' => Some(Priority::P2),
        '🔽' | '⏬' => Some(Priority::P3),
        _ => None,
    })
}

const DURATION: &str = r"(\d+(?:[.,]\d+)?)\s*(minutes?|mins?|heures?|hours?|hrs?|h|jours?|days?|j|d|semaines?|weeks?|sem|w)\b";

fn find_estimate(text: &str) -> Option<Estimate> {
    static IN_PARENS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(&format!(r"(?i)\(\s*~?\s*{DURATION}\s*\)")).expect("static regex")
    });
    static LABELLED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(&format!(
            r"(?i)(?:estimation|estimate|estimé|estimée|durée|duration|effort|⏱️?)\s*(?:total)?\s*[:=]?\s*~?\s*{DURATION}"
        ))
        .expect("static regex")
    });
    let caps = LABELLED
        .captures(text)
        .or_else(|| IN_PARENS.captures(text))?;
    let amount: f64 = caps[1].replace(',', ".").parse().ok()?;
    let unit = caps[2].to_lowercase();
    let hours_per_unit = match unit.as_str() {
        u if u.starts_with("min") => 1.0 / 60.0,
        "h" | "hr" | "hrs" | "heure" | "heures" | "hour" | "hours" => 1.0,
        "j" | "d" | "jour" | "jours" | "day" | "days" => 8.0,
        _ => 40.0,
    };
    Some(Estimate {
        raw: format!("{} {}", &caps[1], &caps[2]),
        hours: amount * hours_per_unit,
    })
}

/// ISO dates and day/month/year dates, as ISO.
fn find_dates(text: &str) -> Vec<String> {
    static ISO: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\b(\d{4})-(\d{2})-(\d{2})\b").expect("static regex"));
    static DAY_FIRST: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b").expect("static regex"));
    let mut dates = Vec::new();
    for caps in ISO.captures_iter(text) {
        if let Some(date) = valid_date(&caps[1], &caps[2], &caps[3]) {
            dates.push(date);
        }
    }
    for caps in DAY_FIRST.captures_iter(text) {
        if let Some(date) = valid_date(&caps[3], &caps[2], &caps[1]) {
            dates.push(date);
        }
    }
    dates
}

fn valid_date(year: &str, month: &str, day: &str) -> Option<String> {
    let (year, month, day): (u32, u32, u32) =
        (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
    ((1970..=2199).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day))
        .then(|| format!("{year:04}-{month:02}-{day:02}"))
}

/// A progress line: `Progression : 45%`, `**Progression globale**: 80%`, `88% complété`.
pub(crate) fn find_progress(text: &str) -> Option<(f32, bool)> {
    static LABEL_FIRST: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)\b(?:progression|progress|avancement|completion|achèvement)\b\s*(globale?|overall|totale?)?[^0-9%\n]{0,20}?(\d{1,3}(?:[.,]\d+)?)\s?%",
        )
        .expect("static regex")
    });
    static PERCENT_FIRST: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)(\d{1,3}(?:[.,]\d+)?)\s?%\s*(?:complétée?s?|complete|completed|terminée?s?|done|achevée?)\b")
            .expect("static regex")
    });
    let (percent, global) = match LABEL_FIRST.captures(text) {
        Some(caps) => (caps[2].replace(',', "."), caps.get(1).is_some()),
        None => {
            let caps = PERCENT_FIRST.captures(text)?;
            let global = text.to_lowercase().contains("global");
            (caps[1].replace(',', "."), global)
        }
    };
    let percent: f32 = percent.parse().ok()?;
    (0.0..=100.0)
        .contains(&percent)
        .then_some((percent, global))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(text: &str) -> Metadata {
        let mut meta = Metadata::default();
        meta.scan(text);
        meta
    }

    #[test]
    fn priorities_in_every_form() {
        assert_eq!(
            meta("Standardisation (P0) #MVP").priority,
            Some(Priority::P0)
        );
        assert_eq!(meta("Priorité : haute").priority, Some(Priority::P1));
        assert_eq!(meta("Priorité : P2").priority, Some(Priority::P2));
        assert_eq!(
            meta("classification #priority:high").priority,
            Some(Priority::P1)
        );
        assert_eq!(meta("Corriger 🔥 vite").priority, Some(Priority::P0));
        assert_eq!(meta("Plan ⏫").priority, Some(Priority::P1));
        assert_eq!(
            meta("PRIORITAIRE - Implementer").priority,
            Some(Priority::P1)
        );
        assert_eq!(meta("P2P network").priority, None);
    }

    #[test]
    fn estimates_in_hours() {
        assert_eq!(
            meta("Écrire les tests (2h)").estimate.map(|e| e.hours),
            Some(2.0)
        );
        assert_eq!(
            meta("Migrer (1.5 jour)").estimate.map(|e| e.hours),
            Some(12.0)
        );
        assert_eq!(
            meta("Estimation : 3 jours").estimate.map(|e| e.hours),
            Some(24.0)
        );
        assert_eq!(
            meta("Durée: 2 semaines").estimate.map(|e| e.hours),
            Some(80.0)
        );
        assert_eq!(meta("(1d)").estimate.map(|e| e.raw), Some("1 d".into()));
        assert_eq!(meta("a 3d model").estimate, None);
    }

    #[test]
    fn mvp_dates_owners_tags() {
        let m =
            meta("Créer #MVP @alice (due 2025-06-13, 01/07/2025) #priority:high #42 mail a@b.c");
        assert!(m.mvp);
        assert_eq!(m.dates, ["2025-06-13", "2025-07-01"]);
        assert_eq!(m.owners, ["alice"]);
        assert_eq!(m.tags, ["MVP", "priority:high"]);
        assert_eq!(meta("2025-13-45").dates, Vec::<String>::new());
    }

    #[test]
    fn progress_lines() {
        assert_eq!(find_progress("Progression : 45%"), Some((45.0, false)));
        assert_eq!(
            find_progress("Progression globale: 80% - En cours"),
            Some((80.0, true))
        );
        assert_eq!(
            find_progress("Version 1.0 - Progression globale : 0%"),
            Some((0.0, true))
        );
        assert_eq!(find_progress("Avancement: 100%"), Some((100.0, false)));
        assert_eq!(
            find_progress("Statut global : [11.45/13] - 88% complété"),
            Some((88.0, true))
        );
        assert_eq!(find_progress("Réduire de 45%"), None);
    }
}
