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

/// The document vector of `tokens`: BM25's saturated term frequency per token.
pub fn document_vector(tokens: &[String]) -> SparseVector {
    let length = tokens.len() as f32;
    let mut frequencies: BTreeMap<u32, f32> = BTreeMap::new();
    for token in tokens {
        *frequencies.entry(term_id(token)).or_default() += 1.0;
    }
    let norm = K1 * (1.0 - B + B * length / AVERAGE_LENGTH);
    let (indices, values) = frequencies
        .into_iter()
        .map(|(id, tf)| (id, tf * (K1 + 1.0) / (tf + norm)))
        .unzip();
    SparseVector { indices, values }
}

/// The query vector: each distinct token once, the words inside an identifier together
/// weighing as much as the identifier whole. A query for `plan-dev-v16-mcp-manager.md` is
/// about that file: the items of that file (which hold its name whole) must outrank items
/// that merely mention `plan`, `dev`, `manager` and `md` in their titles.
pub fn query_vector(text: &str) -> SparseVector {
    let mut weights: BTreeMap<u32, f32> = BTreeMap::new();
    for (token, weight) in weighted_tokens(text) {
        let entry = weights.entry(term_id(&token)).or_default();
        *entry = entry.max(weight);
    }
    let (indices, values) = weights.into_iter().unzip();
    SparseVector { indices, values }
}

/// 32-bit FNV-1a: stable across versions and platforms, which the stored vectors rely on.
fn term_id(token: &str) -> u32 {
    token.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// Lowercased, accent-folded runs of letters, digits and joiners.
fn chunks(folded: &str) -> impl Iterator<Item = &str> {
    folded
        .split(|c: char| !(c.is_alphanumeric() || is_joiner(c)))
        .map(|chunk| chunk.trim_matches(is_joiner))
        .filter(|chunk| !chunk.is_empty())
}

/// The tokens a file's name adds to each of its items: the name whole, and without its
/// extension; not the words inside it, which every item of the file would then match, drowning
/// a query for those words (`complete` in `roadmap_complete_2.md`) in that file's items.
pub fn name_tokens(name: &str) -> Vec<String> {
    let folded = fold(name);
    chunks(&folded).flat_map(whole_tokens).collect()
}

/// What a query made of identifiers only names.
#[derive(Debug, Default, PartialEq)]
pub struct Named {
    /// File names as `name_key` gives them.
    pub files: Vec<String>,
    /// Task numbers (`2.1.2.1`).
    pub numbers: Vec<String>,
}

/// The files and task numbers a query names, when it is made of nothing else: file names
/// (`plan-dev-v57.md`, or the whole query for a name with spaces) and dotted numbers. A query
/// that also holds words is a sentence that may mention them, and names nothing.
pub fn named(query: &str) -> Named {
    let folded = fold(query.trim());
    let mut named = Named::default();
    for chunk in chunks(&folded) {
        if file_stem(chunk).is_some() {
            named.files.push(chunk.to_owned());
        } else if is_dotted_number(chunk) {
            named.numbers.push(chunk.to_owned());
        } else if file_stem(&folded).is_some() {
            // `plan dev copy.md`: a name with spaces, if it is one.
            return Named {
                files: vec![folded.clone()],
                numbers: Vec::new(),
            };
        } else {
            return Named::default();
        }
    }
    named
}

/// Digits joined by dots: a task number (`2.1.2.1`).
pub(crate) fn is_dotted_number(chunk: &str) -> bool {
    chunk.contains('.')
        && chunk
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
}

/// A file's name as `named` gives it: lowercased, accents folded.
pub fn name_key(name: &str) -> String {
    fold(name)
}

/// A chunk as a token, and a file name's stem beside it (`plan-dev-v57` of `plan-dev-v57.md`),
/// so that a query for the name or for the stem finds a file's items, the name counting twice.
fn whole_tokens(chunk: &str) -> impl Iterator<Item = String> + '_ {
    std::iter::once(chunk)
        .chain(file_stem(chunk))
        .map(str::to_owned)
}

/// `name` without its extension, when it ends with one (1 to 8 letters or digits, a letter
/// among them: `.md`, `.json`, `.mp4`, not the `.1` of `2.1`).
pub(crate) fn file_stem(name: &str) -> Option<&str> {
    let (stem, extension) = name.rsplit_once('.')?;
    let is_extension = (1..=8).contains(&extension.len())
        && extension.chars().all(|c| c.is_ascii_alphanumeric())
        && extension.chars().any(|c| c.is_ascii_alphabetic());
    (is_extension && !stem.is_empty()).then_some(stem)
}

pub fn tokens(text: &str) -> Vec<String> {
    weighted_tokens(text)
        .into_iter()
        .map(|(token, _)| token)
        .collect()
}

/// The tokens of `text`, each with 1, but a word inside an identifier with its share of 1.
fn weighted_tokens(text: &str) -> Vec<(String, f32)> {
    let mut out = Vec::new();
    let folded = fold(text);
    for chunk in chunks(&folded) {
        out.extend(whole_tokens(chunk).map(|token| (token, 1.0)));
        // Words inside a name match alone; the digits of a number (`2` of `2.1.2.1`) would
        // only lengthen the document and match every other number.
        let words: Vec<&str> = chunk
            .split(is_joiner)
            .filter(|part| part.chars().any(char::is_alphabetic))
            .collect();
        if chunk.contains(is_joiner) && !words.is_empty() {
            let share = 1.0 / words.len() as f32;
            out.extend(words.into_iter().map(|word| (word.to_owned(), share)));
        }
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
                "plan-dev-v57",
                "plan",
                "dev",
                "v57",
                "md"
            ]
        );
    }

    #[test]
    fn a_file_name_is_a_token_whole_and_without_its_extension() {
        assert_eq!(
            name_tokens("roadmap_complete_2.md"),
            ["roadmap_complete_2.md", "roadmap_complete_2"]
        );
        assert_eq!(name_tokens("README"), ["readme"]);
        // A query for the name holds it whole.
        assert!(tokens("Roadmap_Complete_2.md").contains(&"roadmap_complete_2.md".to_owned()));
    }

    #[test]
    fn a_query_of_identifiers_names_files_and_numbers() {
        let named_in = |query| {
            let Named { files, numbers } = named(query);
            (files, numbers)
        };
        assert_eq!(
            named_in("Plan-Dev-V57.md, 2.1"),
            (vec!["plan-dev-v57.md".to_owned()], vec!["2.1".to_owned()])
        );
        assert_eq!(
            named_in("plan dev copy.md"),
            (vec!["plan dev copy.md".to_owned()], vec![])
        );
        // Words make a sentence, which may mention identifiers but names nothing.
        assert_eq!(named("Tests unitaires 2.1.2.1"), Named::default());
        // Unless the whole query may be a name with spaces: only a file of that name matches.
        assert_eq!(
            named_in("voir plan-dev-v57.md"),
            (vec!["voir plan-dev-v57.md".to_owned()], vec![])
        );
    }

    #[test]
    fn repeated_terms_saturate() {
        let once = document_vector(&tokens("cache"));
        let thrice = document_vector(&tokens("cache cache cache"));
        assert_eq!(once.indices, thrice.indices);
        assert!(thrice.values[0] > once.values[0] && thrice.values[0] < K1 + 1.0);
        assert_eq!(query_vector("Cache cache CACHE").values, vec![1.0]);
    }

    #[test]
    fn the_words_of_an_identifier_share_its_weight_in_a_query() {
        let query = query_vector("voir plan-dev.md");
        let weight = |token: &str| {
            let id = term_id(token);
            query
                .indices
                .iter()
                .position(|&i| i == id)
                .map(|at| query.values[at])
        };
        assert_eq!(weight("voir"), Some(1.0));
        assert_eq!(weight("plan-dev.md"), Some(1.0));
        assert_eq!(weight("plan-dev"), Some(1.0));
        assert_eq!(weight("plan"), Some(1.0 / 3.0));
        assert_eq!(weight("md"), Some(1.0 / 3.0));
        assert_eq!(weight("dev.md"), None);
    }
}
