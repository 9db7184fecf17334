//! Keyword vectors for hybrid search: BM25 term weights as sparse vectors, the store weighing
//! each term by its inverse document frequency at query time (Qdrant's `idf` modifier), so
//! the score of a document is its BM25 score for the query.
//!
//! Tokens are lowercased, accent-folded runs of letters and digits; a run joined by `.`, `-`,
//! `_` or `/` (`2.1.2.1`, `plan-dev-v57.md`, `api/v1`) is a token as a whole, and its parts
//! that hold letters are tokens too, so an exact identifier matches exactly and the words of
//! a name still match alone.

use std::collections::BTreeMap;

use mnemo_store::SparseVector;

const K1: f32 = 1.2;
/// Less length normalisation than the usual 0.75: titles are short, and a longer one is not
/// less about its words.
const B: f32 = 0.5;
/// Typical length, in tokens, of what is indexed (a task's number, title and file name).
const AVERAGE_LENGTH: f32 = 16.0;

/// The document vector: BM25's saturated term frequency per token.
pub fn document_vector(text: &str) -> SparseVector {
    let tokens = tokens(text);
    let length = tokens.len() as f32;
    let mut frequencies: BTreeMap<u32, f32> = BTreeMap::new();
    for token in &tokens {
        *frequencies.entry(term_id(token)).or_default() += 1.0;
    }
    let norm = K1 * (1.0 - B + B * length / AVERAGE_LENGTH);
    let (indices, values) = frequencies
        .into_iter()
        .map(|(id, tf)| (id, tf * (K1 + 1.0) / (tf + norm)))
        .unzip();
    SparseVector { indices, values }
}

/// The query vector: each distinct token once.
pub fn query_vector(text: &str) -> SparseVector {
    let mut ids: Vec<u32> = tokens(text).iter().map(|t| term_id(t)).collect();
    ids.sort_unstable();
    ids.dedup();
    let values = vec![1.0; ids.len()];
    SparseVector {
        indices: ids,
        values,
    }
}

/// 32-bit FNV-1a: stable across versions and platforms, which the stored vectors rely on.
fn term_id(token: &str) -> u32 {
    token.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let folded = fold(text);
    for chunk in folded.split(|c: char| !(c.is_alphanumeric() || is_joiner(c))) {
        let chunk = chunk.trim_matches(is_joiner);
        if chunk.is_empty() {
            continue;
        }
        let parts: Vec<&str> = chunk.split(is_joiner).filter(|p| !p.is_empty()).collect();
        if parts.len() == 1 {
            out.push(chunk.to_owned());
            continue;
        }
        out.push(chunk.to_owned());
        // Words inside a name match alone; the digits of a number (`2` of `2.1.2.1`) would
        // only lengthen the document and match every other number.
        out.extend(
            parts
                .into_iter()
                .filter(|p| p.chars().any(char::is_alphabetic))
                .map(str::to_owned),
        );
    }
    out
}

fn is_joiner(c: char) -> bool {
    matches!(c, '.' | '-' | '_' | '/')
}

/// Lowercase, with the accents of Latin letters removed (`Étape` and `etape` are one word).
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => out.push('a'),
            'ç' => out.push('c'),
            'è' | 'é' | 'ê' | 'ë' => out.push('e'),
            'ì' | 'í' | 'î' | 'ï' => out.push('i'),
            'ñ' => out.push('n'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' => out.push('o'),
            'ù' | 'ú' | 'û' | 'ü' => out.push('u'),
            'ý' | 'ÿ' => out.push('y'),
            'œ' => out.push_str("oe"),
            'æ' => out.push_str("ae"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_tokens_whole_and_in_parts() {
        assert_eq!(
            tokens("**2.1.2.1** Créer l'API (plan-dev-v57.md)."),
            [
                "2.1.2.1",
                "creer",
                "l",
                "api",
                "plan-dev-v57.md",
                "plan",
                "dev",
                "v57",
                "md"
            ]
        );
    }

    #[test]
    fn repeated_terms_saturate() {
        let once = document_vector("cache");
        let thrice = document_vector("cache cache cache");
        assert_eq!(once.indices, thrice.indices);
        assert!(thrice.values[0] > once.values[0] && thrice.values[0] < K1 + 1.0);
        assert_eq!(query_vector("Cache cache CACHE").values, vec![1.0]);
    }
}
