//! Running the binary as a user does, shared by the tests that give it a data directory.
// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// `mnemo ARGS` on the data directory `data`, from the folder that holds it (where files
/// named relatively, such as an import's report, land). `MNEMO_STORE` is cleared: a
/// developer's own setting must not send the tests to a server.
pub fn mnemo(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mnemo"))
        .args(args)
        .env("MNEMO_DATA_DIR", data)
        .env_remove("MNEMO_STORE")
        .current_dir(data.parent().unwrap_or(data))
        .output()
        .expect("run mnemo")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The standard output of a run that must have succeeded.
pub fn ok(output: Output) -> String {
    assert!(output.status.success(), "mnemo failed: {}", stderr(&output));
    stdout(&output)
}

/// The standard error of a run that must have failed.
pub fn failed(output: Output) -> String {
    assert!(
        !output.status.success(),
        "mnemo should have failed: {}",
        stdout(&output)
    );
    stderr(&output)
}

/// Standard output read as JSON Lines.
pub fn json_lines(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

/// `files` plans of 20 distinct tasks each in `dir`: enough work (4,800 tasks for 240 files)
/// for a run to be interrupted between two chunks of files.
pub fn write_plans(dir: &Path, files: usize) {
    for file in 0..files {
        let tasks: String = (0..20)
            .map(|task| {
                format!(
                    "- [ ] Tâche {task} du plan {file}: vérifier le module {}\n",
                    file * 20 + task
                )
            })
            .collect();
        std::fs::write(
            dir.join(format!("plan-{file:03}.md")),
            format!("# Plan {file}\n\n{tasks}"),
        )
        .expect("write a plan");
    }
}

/// `mnemo serve` on a free loopback port over `data`, with `extra` arguments; killed (and
/// waited for) when dropped, so that a failed assertion never leaves it writing into a
/// folder being removed.
#[allow(dead_code)]
pub struct Served {
    child: std::process::Child,
    pub base: String,
}

#[allow(dead_code)]
impl Served {
    pub fn start(data: &Path, extra: &[&std::ffi::OsStr]) -> Served {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_mnemo"))
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(extra)
            .env_remove("MNEMO_API_KEY")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("mnemo serve starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut served = Served {
            child,
            base: String::new(),
        };
        let mut line = String::new();
        stdout.read_line(&mut line).expect("a first line");
        served.base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        // Kept read, so that the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in stdout.lines() {});
        served
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}
