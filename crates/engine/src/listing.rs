//! Listing indexed tasks with the filters of `mnemo tasks` (status, file glob, section), for
//! clients that cannot read the Markdown files themselves.

use globset::GlobMatcher;
use mnemo_store::{Condition, Filter, PayloadSelection, PointId, ScrollRequest, VectorSelection};
use mnemo_text::Status;
use serde_json::{Map, Value};

use crate::search::strip_internal_fields;
use crate::{Engine, Result};

/// Which tasks to list. Pages follow the store's order (point ids), which is stable: a page
/// starts where `offset` says and ends at `limit` tasks.
#[derive(Debug, Clone)]
pub struct TaskQuery {
    pub collection: String,
    /// Any of these; empty for all.
    pub statuses: Vec<Status>,
    /// Matched against the task's `file`.
    pub file: Option<GlobMatcher>,
    /// A heading above the task contains this, case-insensitively.
    pub section: Option<String>,
    /// Any further payload filter.
    pub filter: Filter,
    pub limit: usize,
    pub offset: Option<PointId>,
}

#[derive(Debug, Clone, Default)]
pub struct TaskPage {
    /// Each task's point id under `point_id`, and the fields of `mnemo tasks --json`.
    pub tasks: Vec<Map<String, Value>>,
    /// Where the next page starts; `None` after the last.
    pub next_offset: Option<PointId>,
}

/// Whether one of `headings` (a task's `section_path`) contains `needle`, ignoring case: the
/// `--section` / `section=` filter of `mnemo tasks` and of the task listing.
pub fn under_section<'a>(headings: impl IntoIterator<Item = &'a str>, needle: &str) -> bool {
    let needle = needle.to_lowercase();
    headings
        .into_iter()
        .any(|heading| heading.to_lowercase().contains(&needle))
}

/// Points read per scroll while looking for tasks that pass the glob and section tests.
const SCAN_PAGE: usize = 512;

impl TaskQuery {
    fn passes(&self, payload: &Map<String, Value>) -> bool {
        let file_passes = self.file.as_ref().is_none_or(|glob| {
            payload
                .get("file")
                .and_then(Value::as_str)
                .is_some_and(|file| glob.is_match(file))
        });
        let section_passes = self.section.as_deref().is_none_or(|needle| {
            payload
                .get("section_path")
                .and_then(Value::as_array)
                .is_some_and(|headings| {
                    under_section(headings.iter().filter_map(Value::as_str), needle)
                })
        });
        file_passes && section_passes
    }
}

impl Engine {
    pub fn list_tasks(&self, query: &TaskQuery) -> Result<TaskPage> {
        let mut filter = query.filter.clone();
        if !query.statuses.is_empty() {
            let statuses = query.statuses.iter().map(|status| status.as_str().into());
            filter = filter.and(Filter::must([Condition::any("status", statuses)]));
        }
        let mut page = TaskPage::default();
        let mut offset = query.offset;
        loop {
            let scrolled = self.store().scroll(
                &query.collection,
                ScrollRequest {
                    filter: (!filter.is_empty()).then(|| filter.clone()),
                    limit: SCAN_PAGE.max(query.limit),
                    offset,
                    with_payload: PayloadSelection::All,
                    with_vectors: VectorSelection::None,
                },
            )?;
            for record in scrolled.points {
                if page.tasks.len() == query.limit {
                    page.next_offset = Some(record.id);
                    return Ok(page);
                }
                let mut payload = record.payload;
                if query.passes(&payload) {
                    strip_internal_fields(&mut payload);
                    payload.insert("point_id".into(), Value::String(record.id.to_string()));
                    page.tasks.push(payload);
                }
            }
            match scrolled.next {
                Some(next) if page.tasks.len() < query.limit => offset = Some(next),
                next => {
                    page.next_offset = next;
                    return Ok(page);
                }
            }
        }
    }
}
