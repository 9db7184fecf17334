//! Text to word-piece ids, exactly as sentence-transformers does it.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::error::{EmbedError, Result};

/// One text turned into the ids the model sees.
#[derive(Debug, Clone)]
pub struct TokenizedText {
    /// Ids after truncation, `[CLS]` first and `[SEP]` last.
    pub ids: Vec<u32>,
    /// Word pieces before truncation, `[CLS]` and `[SEP]` included.
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

    /// Word pieces in `text` before truncation, `[CLS]` and `[SEP]` included: what a caller
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
