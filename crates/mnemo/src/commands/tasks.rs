//! `mnemo tasks`: the tasks of Markdown plans as a table, JSON Lines or a summary.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use globset::{Glob, GlobMatcher};
use mnemo_engine::{Skipped, collect_sources, parse_sources, task_json, under_section};
use mnemo_text::{Document, ParseOptions, Status, Task};

#[derive(Args)]
pub struct TasksArgs {
    /// Markdown files, or folders searched recursively for *.md and *.markdown
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// One JSON object per task (JSON Lines)
    #[arg(long, conflicts_with = "summary")]
    json: bool,
    /// Counts per file (tasks, done, open, repairs, passages) and totals
    #[arg(long)]
    summary: bool,
    /// Only tasks with this status: open, in_progress, blocked, cancelled, done (repeat or
    /// separate with commas)
    #[arg(long, value_delimiter = ',', value_parser = parse_status)]
    status: Vec<Status>,
    /// Only files whose path matches this glob (e.g. '**/plans/*v5*.md')
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
    file: Option<GlobMatcher>,
    /// Only tasks under a heading containing this text (case-insensitive)
    #[arg(long, value_name = "TEXT")]
    section: Option<String>,
}

fn parse_status(name: &str) -> Result<Status, String> {
    Status::parse(name).ok_or_else(|| {
        format!(
            "unknown status `{name}`: expected one of {}",
            Status::names()
        )
    })
}

fn parse_glob(pattern: &str) -> Result<GlobMatcher, String> {
    Glob::new(pattern)
        .map(|glob| glob.compile_matcher())
        .map_err(|err| err.to_string())
}

/// Whether every path was read.
pub fn run(args: TasksArgs) -> anyhow::Result<bool> {
    let (mut files, Skipped(mut skipped)) = collect_sources(&args.paths);
    if let Some(glob) = &args.file {
        files.retain(|file| glob.is_match(&file.path) || glob.is_match(&file.source));
    }
    let (documents, Skipped(unreadable)) = parse_sources(&files, &ParseOptions::default());
    skipped.extend(unreadable);

    let keep = |task: &Task| {
        (args.status.is_empty() || args.status.contains(&task.status))
            && args.section.as_deref().is_none_or(|needle| {
                under_section(task.section_path.iter().map(String::as_str), needle)
            })
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if args.summary {
        write_summary(&mut out, &documents, &keep)?;
    } else {
        for (path, document) in &documents {
            let mut tasks = document.tasks.iter().filter(|task| keep(task)).peekable();
            if !args.json && tasks.peek().is_some() {
                writeln!(out, "{}", path.display())?;
            }
            for task in tasks {
                if args.json {
                    serde_json::to_writer(&mut out, &task_json(path, task))?;
                    writeln!(out)?;
                } else {
                    write_row(&mut out, task)?;
                }
            }
        }
    }
    out.flush().context("cannot write the output")?;
    for reason in &skipped {
        eprintln!("skipped {reason}");
    }
    Ok(skipped.is_empty())
}

fn status_mark(status: Status) -> &'static str {
    match status {
        Status::Open => "[ ]",
        Status::Done => "[x]",
        Status::InProgress => "[~]",
        Status::Blocked => "[!]",
        Status::Cancelled => "[-]",
    }
}

/// `  LINE [x] P1 1.2.3      title`, indented by depth, under a line naming the file.
fn write_row(out: &mut impl Write, task: &Task) -> std::io::Result<()> {
    let number = task.number.as_deref().unwrap_or("");
    let indent = "  ".repeat(task.depth.min(8));
    let mut title: String = task.title.chars().take(120).collect();
    if title.len() < task.title.len() {
        title.push('…');
    }
    let priority = task.priority.map_or("", |p| p.as_str());
    writeln!(
        out,
        "{:>6} {} {priority:<2} {number:<10} {indent}{title}",
        task.line,
        status_mark(task.status)
    )
}

#[derive(Default)]
struct Counts {
    tasks: usize,
    done: usize,
    open: usize,
    repairs: usize,
    unrepaired: usize,
    passages: usize,
}

fn write_summary(
    out: &mut impl Write,
    documents: &[(PathBuf, Document)],
    keep: &dyn Fn(&Task) -> bool,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>6} {:>6} {:>6} {:>7} {:>5} {:>8}  file",
        "tasks", "done", "open", "repairs", "left", "passages"
    )?;
    let mut total = Counts::default();
    for (path, document) in documents {
        let tasks: Vec<&Task> = document.tasks.iter().filter(|task| keep(task)).collect();
        let counts = Counts {
            tasks: tasks.len(),
            done: tasks.iter().filter(|t| t.status == Status::Done).count(),
            open: tasks
                .iter()
                .filter(|t| t.status != Status::Done && t.status != Status::Cancelled)
                .count(),
            repairs: document.repairs.count,
            unrepaired: document.repairs.left.len(),
            passages: document.passages.len(),
        };
        write_counts(out, &counts, &path.display().to_string())?;
        total.tasks += counts.tasks;
        total.done += counts.done;
        total.open += counts.open;
        total.repairs += counts.repairs;
        total.unrepaired += counts.unrepaired;
        total.passages += counts.passages;
    }
    write_counts(out, &total, &format!("total ({} files)", documents.len()))
}

fn write_counts(out: &mut impl Write, c: &Counts, label: &str) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>6} {:>6} {:>6} {:>7} {:>5} {:>8}  {label}",
        c.tasks, c.done, c.open, c.repairs, c.unrepaired, c.passages
    )
}
