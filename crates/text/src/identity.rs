//! Ids and content hashes. Both are BLAKE3 over length-prefixed parts, so no two
//! different part lists can collide by concatenation.

use std::sync::LazyLock;

use regex::Regex;

fn digest(domain: &str, parts: &[&str]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    for part in std::iter::once(domain).chain(parts.iter().copied()) {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize()
}

/// A UUID-shaped id (the form Qdrant accepts as a point id).
pub(crate) fn stable_id(domain: &str, parts: &[&str]) -> String {
    let bytes = digest(domain, parts);
    let hex = bytes.to_hex();
    let hex = hex.as_str();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// 128 bits of content hash, in hex.
pub(crate) fn content_hash(parts: &[&str]) -> String {
    digest("content", parts).to_hex().as_str()[..32].to_owned()
}

/// What of a title identifies it: case, spacing and progress figures (`(45%)`, which
/// change as work goes on) do not.
pub(crate) fn identity_key(title: &str) -> String {
    static PERCENT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\d+(?:[.,]\d+)?\s?%").expect("static regex"));
    let without = if title.contains('%') {
        PERCENT.replace_all(title, " ")
    } else {
        title.into()
    };
    without
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_shaped_and_part_boundaries_matter() {
        let id = stable_id("task", &["a", "bc"]);
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_ne!(id, stable_id("task", &["ab", "c"]));
        assert_eq!(id, stable_id("task", &["a", "bc"]));
    }

    #[test]
    fn identity_ignores_case_spacing_and_progress() {
        assert_eq!(
            identity_key("Phase 2 :  Migration (45%)"),
            identity_key("phase 2 : migration (80 %)")
        );
        assert_ne!(identity_key("Phase 2"), identity_key("Phase 3"));
    }
}
