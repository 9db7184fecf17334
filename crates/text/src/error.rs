use std::path::PathBuf;

/// Why a source could not be read. Damaged Markdown is never an error: it is parsed as
/// well as it can be and described in the document's diagnostics.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name} is binary, not text (NUL byte at offset {offset})")]
    Binary { source_name: String, offset: usize },
}
