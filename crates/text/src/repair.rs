//! Repair of double-encoded UTF-8 ("mojibake"): UTF-8 bytes that were once decoded as
//! Windows-1252 and encoded again, so `é` (C3 A9) became `Ã©`.
//!
//! A sequence is repaired only when the characters map back to bytes that form exactly one
//! valid UTF-8 character: a lead byte (C2..F4) followed by the right number of continuation
//! bytes (80..BF). Correct text almost never contains such a run (a capital letter with a
//! diacritic followed by a Windows-1252 symbol), so text that is right is left alone.

use std::borrow::Cow;

use serde::Serialize;

use crate::decode::cp1252_byte;

/// The byte a damaged character came from: Windows-1252 (the usual culprit) or the six
/// letters where Windows-1254 differs from it (`ğ` for F0 turns `🚨` into `ğŸš¨`).
fn source_byte(c: char) -> Option<u8> {
    cp1252_byte(c).or(match c {
        'Ğ' => Some(0xD0),
        'İ' => Some(0xDD),
        'Ş' => Some(0xDE),
        'ğ' => Some(0xF0),
        'ı' => Some(0xFD),
        'ş' => Some(0xFE),
        _ => None,
    })
}

/// A damaged sequence that survived repair, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    pub line: usize,
    pub sequence: String,
    pub reason: LeftoverReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftoverReason {
    /// U+FFFD: the original bytes were lost before the file was written.
    ReplacementCharacter,
    /// A lead character without the continuation characters it needs (bytes dropped,
    /// often the undefined Windows-1252 bytes 0x81, 0x8D, 0x8F, 0x90 and 0x9D).
    IncompleteSequence,
}

impl LeftoverReason {
    pub fn describe(self) -> &'static str {
        match self {
            Self::ReplacementCharacter => "replacement character: the original bytes were lost",
            Self::IncompleteSequence => "incomplete sequence: continuation bytes were dropped",
        }
    }
}

/// Passes over a line: text encoded twice over needs two.
const MAX_PASSES: usize = 3;

/// How much evidence a repair needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairMode {
    /// Only sequences whose every byte survived.
    Strict,
    /// Also sequences whose NBSP (A0) an editor turned into a plain space: `Ã ` for `à`,
    /// `âš ` for `⚠`. Used once strict repairs have shown that the file is damaged.
    NbspAsSpace,
}

/// Repairs one line; returns the text and how many characters were restored.
pub fn repair_line(line: &str, mode: RepairMode) -> (Cow<'_, str>, usize) {
    if !may_be_damaged(line, mode) {
        return (Cow::Borrowed(line), 0);
    }
    let mut text = Cow::Borrowed(line);
    let mut repairs = 0;
    for _ in 0..MAX_PASSES {
        match repair_pass(&text, mode) {
            Some((fixed, count)) => {
                text = Cow::Owned(fixed);
                repairs += count;
            }
            None => break,
        }
    }
    (text, repairs)
}

/// A damaged sequence starts with a lead character (Â..ô in Windows-1252, `ğ` in
/// Windows-1254) followed by a continuation character: without such a pair (`é` followed
/// by a letter is the common French case) there is nothing to do, and no allocation.
fn may_be_damaged(line: &str, mode: RepairMode) -> bool {
    if line.is_ascii() {
        return false;
    }
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let is_lead = ('\u{C2}'..='\u{F4}').contains(&c) || c == 'ğ';
        if is_lead
            && let Some(&next) = chars.peek()
            && (is_continuation(next) || (next == ' ' && mode == RepairMode::NbspAsSpace))
        {
            return true;
        }
    }
    false
}

/// A character standing for a UTF-8 continuation byte (80..BF).
fn is_continuation(c: char) -> bool {
    source_byte(c).is_some_and(|b| (0x80..=0xBF).contains(&b))
}

fn repair_pass(line: &str, mode: RepairMode) -> Option<(String, usize)> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut repairs = 0;
    let mut i = 0;
    while i < chars.len() {
        match decode_sequence(&chars[i..], mode) {
            Some((decoded, consumed)) => {
                out.push(decoded);
                repairs += 1;
                i += consumed;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    restore_variation_selectors(&mut out, &mut repairs);
    (repairs > 0).then_some((out, repairs))
}

/// `ï¸` right after a symbol or emoji is VS16 (EF B8 8F) whose undefined 8F byte was
/// dropped: nothing else of the EF B8 block follows an emoji.
fn restore_variation_selectors(out: &mut String, repairs: &mut usize) {
    if !out.contains("ï¸") {
        return;
    }
    let mut fixed = String::with_capacity(out.len());
    let mut chars = out.chars().peekable();
    let mut previous = None;
    while let Some(c) = chars.next() {
        if c == 'ï' && chars.peek() == Some(&'¸') && previous.is_some_and(is_symbol_or_emoji) {
            chars.next();
            fixed.push('\u{FE0F}');
            *repairs += 1;
            previous = Some('\u{FE0F}');
            continue;
        }
        fixed.push(c);
        previous = Some(c);
    }
    *out = fixed;
}

/// The character that `chars` starts with once its Windows-1252 bytes are read as UTF-8,
/// and how many characters it took.
fn decode_sequence(chars: &[char], mode: RepairMode) -> Option<(char, usize)> {
    let lead = source_byte(*chars.first()?)?;
    let len = match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    if chars.len() < len {
        return None;
    }
    let mut bytes = [lead, 0, 0, 0];
    let mut real_continuations = 0;
    for (slot, &c) in bytes[1..len].iter_mut().zip(&chars[1..len]) {
        *slot = match source_byte(c) {
            Some(byte @ 0x80..=0xBF) => {
                real_continuations += 1;
                byte
            }
            _ if c == ' ' && mode == RepairMode::NbspAsSpace => 0xA0,
            _ => return None,
        };
    }
    let spaces = len - 1 - real_continuations;
    if spaces > 0 {
        // Two-byte: only `Ã ` (à) is common enough to be unmistakable. `â€ ` is `”`
        // with its undefined 9D byte dropped as often as it is `†`: left alone.
        let plausible = if len == 2 {
            lead == 0xC3
        } else {
            real_continuations > 0 && !(lead == 0xE2 && bytes[1] == 0x80)
        };
        if !plausible {
            return None;
        }
    }
    let decoded = std::str::from_utf8(&bytes[..len]).ok()?.chars().next()?;
    if decoded.is_control() {
        return None;
    }
    // A space that was really a space after a dropped byte would decode to junk such as
    // U+FE20 (a combining half mark): only letters, symbols and emoji are believed.
    if spaces > 0 && !(decoded.is_alphabetic() || is_symbol_or_emoji(decoded)) {
        return None;
    }
    Some((decoded, len))
}

fn is_symbol_or_emoji(c: char) -> bool {
    matches!(u32::from(c), 0x2190..=0x2BFF | 0x1F300..=0x1FAFF)
}

/// Damage still visible in repaired text, for the report.
pub fn leftovers(line_number: usize, line: &str) -> Vec<Leftover> {
    if line.is_ascii()
        || !line
            .chars()
            .any(|c| matches!(c, 'Ã' | 'Â' | 'â' | 'ð' | 'ğ' | 'ï' | '\u{FFFD}'))
    {
        return Vec::new();
    }
    let chars: Vec<char> = line.chars().collect();
    let mut found = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == char::REPLACEMENT_CHARACTER {
            found.push(Leftover {
                line: line_number,
                sequence: context(&chars, i),
                reason: LeftoverReason::ReplacementCharacter,
            });
        } else if is_damaged_lead(&chars, i) {
            found.push(Leftover {
                line: line_number,
                sequence: context(&chars, i),
                reason: LeftoverReason::IncompleteSequence,
            });
        }
    }
    found
}

/// `Ã`, `Â`, `â€`, `ðŸ` followed by a character that could only come from a damaged
/// sequence: the signatures the acceptance test looks for.
fn is_damaged_lead(chars: &[char], i: usize) -> bool {
    let next = chars.get(i + 1).copied();
    let continuation = next.is_some_and(is_continuation);
    match chars[i] {
        'Ã' | 'Â' => continuation || next == Some(' '),
        'â' => next == Some('€'),
        'ð' | 'ğ' => next == Some('Ÿ'),
        'ï' => next == Some('¸'),
        _ => false,
    }
}

fn context(chars: &[char], i: usize) -> String {
    let start = i.saturating_sub(8);
    let end = (i + 8).min(chars.len());
    chars[start..end].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(s: &str) -> String {
        repair_line(s, RepairMode::NbspAsSpace).0.into_owned()
    }

    #[test]
    fn repairs_the_usual_damage() {
        assert_eq!(fixed("CrÃ©er la base"), "Créer la base");
        assert_eq!(fixed("Ã©tape"), "étape");
        assert_eq!(fixed("lâ€™Ã©quipe"), "l’équipe");
        assert_eq!(fixed("Ã‰TAPE"), "ÉTAPE");
        assert_eq!(fixed("âœ… fini ðŸš€"), "✅ fini 🚀");
        assert_eq!(fixed("Ã  faire"), "à faire");
        assert_eq!(
            fixed("DÃ©finir les Ã©tapes dâ€™Ã©volution"),
            "Définir les étapes d’évolution"
        );
    }

    #[test]
    fn repairs_text_encoded_twice_over() {
        assert_eq!(fixed("CrÃƒÂ©er"), "Créer");
    }

    #[test]
    fn counts_each_restored_character() {
        assert_eq!(repair_line("CrÃ©er lâ€™Ã©tape", RepairMode::Strict).1, 3);
        assert_eq!(repair_line("Créer l’étape", RepairMode::Strict).1, 0);
    }

    #[test]
    fn a_space_stands_for_nbsp_only_when_allowed() {
        assert_eq!(repair_line("Ã  faire", RepairMode::Strict).1, 0);
        assert_eq!(fixed("âš  attention"), "⚠ attention");
        assert_eq!(fixed("â€ fin"), "â€ fin");
        // 🏗️ with both of its undefined 8F bytes dropped: the space is a space.
        assert_eq!(fixed("ğŸ—ï¸ SPÉC"), "ğŸ—ï¸ SPÉC");
    }

    #[test]
    fn windows_1254_damage_is_repaired_too() {
        assert_eq!(fixed("ğŸš¨ CONSIGNES"), "🚨 CONSIGNES");
        assert_eq!(fixed("Doğru değil"), "Doğru değil");
        assert_eq!(fixed("ðŸ—‚ï¸ Structure"), "🗂\u{FE0F} Structure");
    }

    #[test]
    fn correct_text_is_never_changed() {
        for text in [
            "Créer l’étape à venir — déjà fait",
            "Ça marche: naïve façade, cœur, Œuvre, ÉTAPE",
            "SÃO PAULO",
            "température 30°C, 50 €, « guillemets »",
            "✅ 🚀 ⚠️ emoji as they should be",
            "Âge, Ârbre, â est une lettre",
        ] {
            let (out, count) = repair_line(text, RepairMode::Strict);
            assert!(
                matches!(out, Cow::Borrowed(_)) || out == text,
                "{text} -> {out}"
            );
            assert_eq!(count, 0, "{text}");
        }
    }

    #[test]
    fn reports_what_could_not_be_repaired() {
        let left = leftovers(7, "bad \u{FFFD} and â€ quote");
        assert_eq!(left.len(), 2);
        assert_eq!(left[0].reason, LeftoverReason::ReplacementCharacter);
        assert_eq!(left[1].reason, LeftoverReason::IncompleteSequence);
        assert_eq!(left[0].line, 7);
        assert!(leftovers(1, "Créer l’étape").is_empty());
    }
}
