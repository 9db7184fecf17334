//! Progress in one style, for the commands that run long: `⠁ LABEL [=====>    ] COUNT
//! MESSAGE (ELAPSED)`, drawn by indicatif on standard error, and only on a terminal. One bar
//! type follows both the indexer ([`IndexProgress`]) and imports, exports and migrations
//! ([`ImportProgress`]).

use indicatif::{ProgressBar, ProgressStyle};
use mnemo_engine::IndexProgress;
use mnemo_transfer::ImportProgress;

pub struct Bar(pub ProgressBar);

impl Bar {
    /// A bar labelled `label` (`{prefix}` lets the work name its phases), its count drawn by
    /// `counter` (`{pos}/{len} files,`, `{bytes}/{total_bytes}`).
    pub fn new(label: &str, counter: &str) -> Self {
        let template = format!("{{spinner}} {label} [{{bar:30}}] {counter} {{msg}} ({{elapsed}})");
        Self(
            ProgressBar::new(0).with_style(
                ProgressStyle::with_template(&template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
        )
    }

    /// Done: the bar leaves the terminal as it found it.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl IndexProgress for Bar {
    fn start(&self, files: usize) {
        self.0.set_length(files as u64);
    }

    fn files_done(&self, files: usize, embedded: usize) {
        self.0.set_position(files as u64);
        self.0.set_message(format!("{embedded} embedded"));
    }

    fn phase(&self, name: &str) {
        self.0.set_message(name.to_owned());
    }

    fn cancelled(&self) -> bool {
        crate::interrupt::requested()
    }
}

impl ImportProgress for Bar {
    fn phase(&self, name: &str, total: u64) {
        self.0.set_prefix(name.to_owned());
        self.0.set_length(total);
        self.0.set_position(0);
    }

    fn advance(&self, amount: u64, records: usize) {
        self.0.inc(amount);
        self.0.set_message(format!("{records} records"));
    }
}
