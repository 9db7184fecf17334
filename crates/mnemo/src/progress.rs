//! Progress bars in one style, for the commands that run long: `⠁ LABEL [=====>    ] COUNT
//! MESSAGE (ELAPSED)`. indicatif draws them on standard error, and only on a terminal.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar labelled `label` (indicatif's `{prefix}` lets the work name its phases), its count
/// drawn by `counter` (`{pos}/{len} files,`, `{bytes}/{total_bytes}`).
pub fn bar(label: &str, counter: &str) -> ProgressBar {
    let template = format!("{{spinner}} {label} [{{bar:30}}] {counter} {{msg}} ({{elapsed}})");
    ProgressBar::new(0).with_style(
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    )
}
