//! Text to word-piece ids, exactly as sentence-transformers does it.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::error::{EmbedError, Result};

/// `text` cut where the model's window of `pieces` word pieces is surely full, so that the
/// tokenizer never works through more than the model can see (a 32 MiB text was tokenized
/// whole, for 256 of its pieces). The cut comes after `pieces` runs that each make at least
/// one word piece whatever the tokenizer does: an ASCII punctuation mark (BERT splits each
/// one off), or a run of other characters between ASCII spaces, tabs and line ends that
/// holds a letter or a digit (normalisation never removes those). Anything this does not
/// count (other spaces, marks, symbols) only makes more pieces, so the first `pieces` are
/// the same as the whole text's, and a cut text still reports more than `pieces`.
pub fn within_window(text: &str, pieces: usize) -> &str {
    let mut counted = 0;
    let mut word_has_alnum = false;
    for (at, c) in text.char_indices() {
        let separator = matches!(c, ' ' | '\t' | '\n' | '\r');
        let punctuation = c.is_ascii_punctuation();
        if separator || punctuation {
            if word_has_alnum {
                counted += 1;
                word_has_alnum = false;
            }
            if counted >= pieces {
                return &text[..at];
            }
            if punctuation {
                counted += 1;
            }
        } else if c.is_alphanumeric() {
            word_has_alnum = true;
        }
    }
    text
}

/// One text turned into the ids the model sees.
#[derive(Debug, Clone)]
pub struct TokenizedText {
    /// Ids after truncation, `[CLS]` first and `[SEP]` last.
    pub ids: Vec<u32>,
    /// Word pieces before truncation, `[CLS]` and `[SEP]` included; for a text past the
    /// window, those up to where it was cut ([`within_window`]): more than the window, and
    /// at most the whole text's.
    pub full_len: usize,
}

impl TokenizedText {
    pub fn truncated(&self) -> bool {
        self.full_len > self.ids.len()
    }
}

/// `tokenizer.json` with its own truncation and padding switched off.
///
/// The file carries `truncation: 128` and `padding: Fixed 128`, which sentence-transformers
/// ignores; it truncates to `max_seq_length` and pads to the longest text of a batch.
/// Padding never reaches the mean (the attention mask removes it), so mnemo does not pad at
/// all, and truncates by hand so it can report the length before truncation.
pub struct TextTokenizer {
    inner: Tokenizer,
    max_seq_length: usize,
}

impl TextTokenizer {
    pub fn load(path: &Path, max_seq_length: usize) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path).map_err(|e| EmbedError::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        inner
            .with_truncation(None)
            .map_err(|e| EmbedError::Tokenizer {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        inner.with_padding(None);
        Ok(Self {
            inner,
            max_seq_length,
        })
    }

    /// Tokenizes `text`, the text at position `index` of the caller's batch.
    ///
    /// Empty and whitespace-only texts are refused: sentence-transformers would give them
    /// the vector of `[CLS] [SEP]`, which means nothing and would rank as similar to every
    /// other empty text.
    pub fn tokenize(&self, index: usize, text: &str) -> Result<TokenizedText> {
        if text.trim().is_empty() {
            return Err(EmbedError::EmptyText { index });
        }
        let text = within_window(text, self.max_seq_length);
        let encoding = self
            .inner
            .encode_fast(text, true)
            .map_err(|e| EmbedError::Tokenize {
                index,
                message: e.to_string(),
            })?;
        let mut ids = encoding.get_ids().to_vec();
        let full_len = ids.len();
        if full_len > self.max_seq_length {
            // The same cut as the `tokenizers` library's `longest_first` truncation of a single
            // sequence: keep the first max-2 word pieces, then the closing special token.
            let sep = ids[full_len - 1];
            ids.truncate(self.max_seq_length - 1);
            ids.push(sep);
        }
        Ok(TokenizedText { ids, full_len })
    }

    /// Word pieces in the whole of `text` before truncation, `[CLS]` and `[SEP]` included
    /// (the one place that tokenizes a text past the window): what a caller
    /// compares with [`TextTokenizer::max_seq_length`] to decide where to chunk.
    pub fn count(&self, text: &str) -> Result<usize> {
        self.inner
            .encode_fast(text, true)
            .map(|e| e.get_ids().len())
            .map_err(|e| EmbedError::Tokenize {
                index: 0,
                message: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_text_keeps_the_window_of_the_whole_one() {
        let dir = crate::default_model_dir();
        let tokenizer = TextTokenizer::load(&dir.join("tokenizer.json"), 256).unwrap();
        let whole = |text: &str| {
            let ids = tokenizer
                .inner
                .encode_fast(text, true)
                .unwrap()
                .get_ids()
                .to_vec();
            (ids.len(), ids)
        };
        let sentence =
            "Migrer le vectoriseur Go (étape 2.1.2) vers Qdrant, sans recalculer les embeddings! ";
        let cases = [
            sentence.repeat(2_000),
            format!("{}{}", "\u{0001} ".repeat(5_000), sentence.repeat(100)),
            format!("{}{}", " ".repeat(100_000), sentence.repeat(100)),
            "a.".repeat(50_000),
            "x".repeat(300_000),
            "漢字".repeat(10_000),
            format!("{} {}", "mot ".repeat(250), "fin".repeat(200)),
        ];
        for text in &cases {
            let cut = within_window(text, 256);
            let (whole_len, whole_ids) = whole(text);
            let got = tokenizer.tokenize(0, text).unwrap();
            assert!(got.full_len > 256 || got.full_len == whole_len);
            let mut expected = whole_ids.clone();
            if whole_len > 256 {
                let sep = expected[whole_len - 1];
                expected.truncate(255);
                expected.push(sep);
            }
            assert_eq!(
                got.ids,
                expected,
                "text of {} bytes cut to {}",
                text.len(),
                cut.len()
            );
            assert_eq!(got.truncated(), whole_len > 256);
        }
        assert!(within_window(&sentence.repeat(100_000), 256).len() < 4_096);
    }
}
