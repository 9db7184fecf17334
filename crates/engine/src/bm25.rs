//! Keyword vectors for hybrid search: BM25 term weights as sparse vectors, the store weighing
//! each term by its inverse document frequency at query time (Qdrant's `idf` modifier), so
//! the score of a document is its BM25 score for the query.
//!
//! Text is lowercased and cut into runs of letters, digits and joiners. A run joined by `.`,
//! `-`, `_` or `/` (`2.1.2.1`, `plan-dev-v57.md`, `api/v1`) is a term as a whole, accents
//! folded, so an exact identifier matches exactly; its words match alone too. A word is
//! analysed as French and as English at once, since the plans mix both, often in one line:
//! the stop words of either language are dropped (with them the elided articles of `l'API`,
//! `d'index`, `qu'il`), and what is left is reduced to its Snowball stem in each language,
//! accents folded (`Étape` and `etapes`, `indexation` and `indexer`, `caching` and `caches`
//! meet). A word's stems share its weight, so that every word counts once in a document's
//! length and in a query.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use mnemo_store::SparseVector;
use rust_stemmers::{Algorithm, Stemmer};

/// The version of the analysis below. Vectors are stored, so a change here that yields other
/// terms must bump it: what was indexed with another version is analysed again.
pub const ANALYSIS_VERSION: u32 = 2;

const K1: f32 = 1.2;
/// Less length normalisation than the usual 0.75: titles are short, and a longer one is not
/// less about its words.
const B: f32 = 0.5;
/// Typical length, in words, of what is indexed (a task's number, title and file name).
const AVERAGE_LENGTH: f32 = 16.0;

static FRENCH: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::French));
static ENGLISH: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// A term and its weight: 1 for a word or an identifier, less for a share of one.
pub type Term = (String, f32);

/// The document vector of `terms`: BM25's saturated term frequency per term, the length being
/// the sum of their weights; `context` adds to the frequencies without lengthening it.
pub fn document_vector(terms: &[Term], context: &[Term]) -> SparseVector {
    let length: f32 = terms.iter().map(|(_, weight)| weight).sum();
    let mut frequencies: BTreeMap<u32, f32> = BTreeMap::new();
    for (term, weight) in terms.iter().chain(context) {
        *frequencies.entry(term_id(term)).or_default() += weight;
    }
    let norm = K1 * (1.0 - B + B * length / AVERAGE_LENGTH);
    let (indices, values) = frequencies
        .into_iter()
        .map(|(id, tf)| (id, tf * (K1 + 1.0) / (tf + norm)))
        .unzip();
    SparseVector { indices, values }
}

/// The query vector: each distinct term once. The words inside an identifier together weigh
/// as much as the identifier whole: a query for `plan-dev-v16-mcp-manager.md` is about that
/// file, whose items (which hold its name whole) must outrank items that merely mention
/// `plan`, `dev`, `manager` and `md` in their titles.
pub fn query_vector(text: &str) -> SparseVector {
    let mut weights: BTreeMap<u32, f32> = BTreeMap::new();
    for (term, weight) in terms(text) {
        let entry = weights.entry(term_id(&term)).or_default();
        *entry = entry.max(weight);
    }
    let (indices, values) = weights.into_iter().unzip();
    SparseVector { indices, values }
}

/// Each term of `text` once, at `weight` times the largest weight it has there: what a text
/// is about, bounded however long it is.
pub fn distinct_terms(text: &str, weight: f32) -> Vec<Term> {
    let mut distinct: BTreeMap<String, f32> = BTreeMap::new();
    for (term, term_weight) in terms(text) {
        let entry = distinct.entry(term).or_default();
        *entry = entry.max(term_weight * weight);
    }
    distinct.into_iter().collect()
}

/// 32-bit FNV-1a: stable across versions and platforms, which the stored vectors rely on.
fn term_id(term: &str) -> u32 {
    term.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// Runs of letters, digits and joiners.
fn chunks(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || is_joiner(c)))
        .map(|chunk| chunk.trim_matches(is_joiner))
        .filter(|chunk| !chunk.is_empty())
}

/// The terms a file's name adds to each of its items: the name whole, and without its
/// extension; not the words inside it, which every item of the file would then match, drowning
/// a query for those words (`complete` in `roadmap_complete_2.md`) in that file's items.
pub fn name_terms(name: &str) -> Vec<Term> {
    let folded = fold(name);
    chunks(&folded)
        .flat_map(whole_terms)
        .map(|term| (term, 1.0))
        .collect()
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

/// A folded chunk as a term, and a file name's stem beside it (`plan-dev-v57` of
/// `plan-dev-v57.md`), so that a query for the name or for the stem finds a file's items, the
/// name counting twice.
fn whole_terms(chunk: &str) -> impl Iterator<Item = String> + '_ {
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

/// The terms of `text`, each with its weight.
pub fn terms(text: &str) -> Vec<Term> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    for chunk in chunks(&lower) {
        if !chunk.contains(is_joiner) {
            push_shared(&mut out, word_terms(chunk), 1.0);
            continue;
        }
        out.extend(whole_terms(&fold(chunk)).map(|term| (term, 1.0)));
        // Words inside a name match alone; the digits of a number (`2` of `2.1.2.1`) would
        // only lengthen the document and match every other number.
        let words: Vec<Vec<String>> = chunk
            .split(is_joiner)
            .filter(|part| part.chars().any(char::is_alphabetic))
            .map(word_terms)
            .filter(|stems| !stems.is_empty())
            .collect();
        let share = 1.0 / words.len().max(1) as f32;
        for stems in words {
            push_shared(&mut out, stems, share);
        }
    }
    out
}

/// `weight` shared between `stems`.
fn push_shared(out: &mut Vec<Term>, stems: Vec<String>, weight: f32) {
    let each = weight / stems.len().max(1) as f32;
    out.extend(stems.into_iter().map(|stem| (stem, each)));
}

/// The terms of one lowercased word: none for a stop word of French or English; the word
/// folded when it holds a digit (`v57`, `8kb`); else its French and English stems, folded,
/// once when they agree.
fn word_terms(word: &str) -> Vec<String> {
    let folded = fold(word);
    if STOP_WORDS.contains(folded.as_str()) {
        return Vec::new();
    }
    if !word.chars().all(char::is_alphabetic) {
        return vec![folded];
    }
    // French's stemmer reads accents (`é` ends a participle); English's has none to read.
    let french = fold(&FRENCH.stem(word));
    let english = ENGLISH.stem(&folded).into_owned();
    if french == english {
        vec![french]
    } else {
        vec![french, english]
    }
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

/// Snowball's French and English stop words, accents folded, with the elided forms that an
/// apostrophe leaves alone (`l`, `d`, `qu`, `jusqu`: `l'API` is `API`). Words that carry a
/// plan's meaning in either language (`up`, `down`, `off`, `over`, `out`) are kept.
static STOP_WORDS: LazyLock<std::collections::HashSet<&'static str>> = LazyLock::new(|| {
    const FRENCH_WORDS: &str = "au aux avec ce ces dans de des du elle en et eux il ils je la le \
        les leur lui ma mais me meme mes moi mon ne nos notre nous on ou par pas pour qu que qui \
        sa se ses son sur ta te tes toi ton tu un une vos votre vous c d j l m n s t y jusqu \
        lorsqu puisqu quoiqu presqu quelqu ete etee etees etes etant etante etants etantes suis \
        es est sommes sont serai seras sera serons serez seront serais serait serions seriez \
        seraient etais etait etions etiez etaient fus fut fumes futes furent sois soit soyons \
        soyez soient fusse fusses fussions fussiez fussent ayant ayante ayantes ayants eu eue \
        eues eus ai as avons avez ont aurai auras aura aurons aurez auront aurais aurait \
        aurions auriez auraient avais avait avions aviez avaient eut eumes eutes eurent aie \
        aies ait ayons ayez aient eusse eusses eussions eussiez eussent";
    const ENGLISH_WORDS: &str = "i me my myself we our ours ourselves you your yours yourself \
        yourselves he him his himself she her hers herself it its itself they them their theirs \
        themselves what which who whom this that these those am is are was were be been being \
        have has had having do does did doing a an the and but if or because as until while of \
        at by for with about against between into through during before after above below to \
        from in on again further then once here there when where why how all any both each few \
        more most other some such no nor not only own same so than too very s t can will just \
        don should now ll re ve";
    FRENCH_WORDS
        .split_whitespace()
        .chain(ENGLISH_WORDS.split_whitespace())
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        terms(text).into_iter().map(|(term, _)| term).collect()
    }

    fn shares_a_term(a: &str, b: &str) -> bool {
        let a = words(a);
        words(b).iter().any(|term| a.contains(term))
    }

    #[test]
    fn identifiers_are_terms_whole_and_in_parts() {
        assert_eq!(
            words("**2.1.2.1** Créer l'API (plan-dev-v57.md)."),
            [
                "2.1.2.1",
                "cre",
                "creer",
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
    fn stop_words_and_elisions_of_both_languages_are_dropped() {
        assert_eq!(words("l'indexation"), words("indexation"));
        assert_eq!(words("d’index"), words("index"));
        assert_eq!(words("qu'il"), Vec::<String>::new());
        assert_eq!(words("the cache of the plans"), words("cache plans"));
        assert_eq!(words("mise à jour des données"), words("mise jour données"));
        // Stop words inside an identifier are not terms either, the name whole still is.
        assert_eq!(words("plan-de-test"), ["plan-de-test", "plan", "test"]);
    }

    #[test]
    fn inflections_meet_in_french_and_english() {
        assert!(shares_a_term("Étape", "etapes"));
        assert!(shares_a_term("indexation", "indexer"));
        assert!(shares_a_term(
            "Créer les collections",
            "création d'une collection"
        ));
        assert!(shares_a_term("caching", "caches"));
        assert!(shares_a_term("deployments", "deploy"));
        assert!(!shares_a_term("cache", "chargement"));
    }

    #[test]
    fn a_word_counts_once_whatever_its_stems() {
        let weight = |text: &str| terms(text).iter().map(|(_, w)| w).sum::<f32>();
        assert!((weight("créer") - 1.0).abs() < 1e-6);
        // The name whole, and its two words sharing one.
        assert!((weight("plan-dev") - 2.0).abs() < 1e-6);
        assert_eq!(terms("the"), Vec::<Term>::new());
    }

    #[test]
    fn a_file_name_is_a_term_whole_and_without_its_extension() {
        let names = |name: &str| {
            name_terms(name)
                .into_iter()
                .map(|(term, _)| term)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names("roadmap_complete_2.md"),
            ["roadmap_complete_2.md", "roadmap_complete_2"]
        );
        assert_eq!(names("README"), ["readme"]);
        // A query for the name holds it whole.
        assert!(words("Roadmap_Complete_2.md").contains(&"roadmap_complete_2.md".to_owned()));
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
        let once = document_vector(&terms("cache"), &[]);
        let thrice = document_vector(&terms("cache cache cache"), &[]);
        assert_eq!(once.indices, thrice.indices);
        assert!(thrice.values[0] > once.values[0] && thrice.values[0] < K1 + 1.0);
        assert_eq!(query_vector("Cache cache CACHE").values, vec![1.0]);
    }

    #[test]
    fn the_words_of_an_identifier_share_its_weight_in_a_query() {
        let query = query_vector("voir plan-dev.md");
        let weight = |term: &str| {
            let id = term_id(term);
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
