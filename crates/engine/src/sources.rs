//! Finding the Markdown files to read under the paths a user names.

use std::path::{Path, PathBuf};

use mnemo_text::{Document, ParseOptions, TextError, parse_file};
use rayon::prelude::*;

/// A Markdown file to read: where it is, and the name its ids are built from (the path
/// relative to the folder given, so ids survive moving the folder).
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub source: String,
}

/// Paths that could not be read, each with the reason.
#[derive(Debug, Clone, Default)]
pub struct Skipped(pub Vec<String>);

/// Finds the Markdown files under `paths`. A file named explicitly is read whatever its
/// extension; folders contribute `*.md` and `*.markdown`, in name order.
pub fn collect_sources(paths: &[PathBuf]) -> (Vec<SourceFile>, Skipped) {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for root in paths {
        let metadata = match std::fs::metadata(root) {
            Ok(metadata) => metadata,
            Err(err) => {
                skipped.push(format!("{}: {err}", root.display()));
                continue;
            }
        };
        if metadata.is_file() {
            let source = root.file_name().map_or_else(
                || root.display().to_string(),
                |name| name.to_string_lossy().into_owned(),
            );
            files.push(SourceFile {
                path: root.clone(),
                source,
            });
            continue;
        }
        let before = files.len();
        for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    let path = err.path().unwrap_or(root).display().to_string();
                    skipped.push(format!(
                        "{path}: {}",
                        err.io_error()
                            .map_or_else(|| err.to_string(), ToString::to_string)
                    ));
                    continue;
                }
            };
            if entry.file_type().is_file() && is_markdown(entry.path()) {
                let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
                files.push(SourceFile {
                    path: entry.path().to_owned(),
                    source: relative.to_string_lossy().replace('\\', "/"),
                });
            }
        }
        if files.len() == before {
            skipped.push(format!(
                "{}: no Markdown files (*.md, *.markdown) in this folder",
                root.display()
            ));
        }
    }
    (files, Skipped(skipped))
}

fn is_markdown(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| ext.eq_ignore_ascii_case("md") || ext.eq_ignore_ascii_case("markdown"))
}

/// Reads and parses `files` in parallel; one result per file, in the order of `files`.
pub fn parse_in_parallel<'a>(
    files: impl IntoParallelIterator<Item = &'a SourceFile>,
    options: &ParseOptions<'_>,
) -> Vec<Result<Document, TextError>> {
    files
        .into_par_iter()
        .map(|file| parse_file(&file.path, &file.source, options))
        .collect()
}

/// [`parse_in_parallel`], the files that could not be read set apart with their reasons.
pub fn parse_sources(
    files: &[SourceFile],
    options: &ParseOptions<'_>,
) -> (Vec<(PathBuf, Document)>, Skipped) {
    let mut documents = Vec::with_capacity(files.len());
    let mut skipped = Vec::new();
    for (file, result) in files.iter().zip(parse_in_parallel(files, options)) {
        match result {
            Ok(document) => documents.push((file.path.clone(), document)),
            Err(err) => skipped.push(err.to_string()),
        }
    }
    (documents, Skipped(skipped))
}
