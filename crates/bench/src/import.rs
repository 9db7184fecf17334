//! `mnemo-bench import`: a legacy `task_vectors.json` written the way the old PowerShell
//! vectoriser wrote it (UTF-8 BOM, 4-space indentation, CRLF, one float per line with 6
//! decimals, 1536-d), imported by `mnemo import` in a child process into a fresh store: MB/s,
//! points/s and the child's peak RSS beside the vectors' own size, for each file size asked
//! (50 MB, then 500 MB by default, to show time linear and memory flat). The reference beside
//! it, when a Python is found: the old scripts' first step, `json.load` of the same file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use crate::stats::{Rng, median};

#[derive(Args)]
pub struct ImportArgs {
    /// File sizes to generate and import, in MB
    #[arg(long, value_delimiter = ',', default_value = "50,500")]
    sizes: Vec<u64>,
    /// Dimensions of the legacy vectors
    #[arg(long, default_value_t = 1536)]
    dim: usize,
    /// Timed imports per size (the median is reported)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// Python for the reference (`json.load` of the same file); `none` to skip it
    #[arg(long, default_value = "python3")]
    python: String,
    /// Import with --no-optimize: the data lands, the HNSW index is left for later
    #[arg(long)]
    no_optimize: bool,
    /// Where to write the generated files [default: a temporary folder]
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Writes a legacy file of about `megabytes` MB; the number of tasks.
fn write_legacy(path: &Path, megabytes: u64, dim: usize) -> anyhow::Result<usize> {
    // A float's line: 16 spaces of indentation, sign, 0.dddddd, comma, CRLF: about 28 bytes.
    let per_task = dim * 28 + 600;
    let tasks = ((megabytes * 1_000_000) as usize / per_task).max(1);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let nl = "\r\n";
    let (i1, i2, i3, i4) = ("    ", "        ", "            ", "                ");
    out.write_all(b"\xef\xbb\xbf{\r\n")?;
    write!(
        out,
        "{i1}\"metadata\": {{{nl}{i2}\"created\": \"2025-06-10T14:03:11\",{nl}{i2}\"source\": \"plan-dev-v57.md\",{nl}{i2}\"taskCount\": {tasks},{nl}{i2}\"vectorDimension\": {dim},{nl}{i2}\"model\": \"text-embedding-ada-002\"{nl}{i1}}},{nl}{i1}\"tasks\": [{nl}"
    )?;
    let mut rng = Rng(7);
    for task in 0..tasks {
        let (phase, step, item) = (task / 100 + 1, (task / 10) % 10 + 1, task % 10 + 1);
        write!(
            out,
            "{i2}{{{nl}{i3}\"TaskId\": \"{phase}.{step}.{item}\",{nl}{i3}\"Description\": \"Migrer le vectoriseur Go, étape {task}\",{nl}{i3}\"Status\": \"{}\",{nl}{i3}\"Section\": \"Phase {phase}\",{nl}{i3}\"IndentLevel\": {},{nl}{i3}\"LastUpdated\": \"2025-06-10T14:03:11\",{nl}{i3}\"ParentId\": \"{phase}.{step}\",{nl}{i3}\"Vector\": [{nl}",
            if task % 3 == 0 {
                "completed"
            } else {
                "pending"
            },
            task % 4,
        )?;
        for i in 0..dim {
            let value = (rng.next() % 2_000_000) as f64 / 1_000_000.0 - 1.0;
            let comma = if i + 1 < dim { "," } else { "" };
            write!(out, "{i4}{value:.6}{comma}{nl}")?;
        }
        write!(
            out,
            "{i3}],{nl}{i3}\"Metadata\": {{{nl}{i4}\"VectorDimension\": {dim},{nl}{i4}\"VectorModel\": \"text-embedding-ada-002\",{nl}{i4}\"VectorCreated\": \"2025-06-10T14:03:11\"{nl}{i3}}}{nl}{i2}}}{}{nl}",
            if task + 1 < tasks { "," } else { "" }
        )?;
    }
    write!(out, "{i1}]{nl}}}{nl}")?;
    out.flush()?;
    Ok(tasks)
}

struct Run {
    seconds: f64,
    peak_rss_mib: f64,
    summary: Value,
}

fn import_once(mnemo: &Path, file: &Path, data: &Path, no_optimize: bool) -> anyhow::Result<Run> {
    let _ = std::fs::remove_dir_all(data);
    let started = Instant::now();
    let mut command = Command::new(mnemo);
    command
        .args(["import", "--collection", "legacy", "--json", "--data-dir"])
        .arg(data)
        .arg(file);
    if no_optimize {
        command.arg("--no-optimize");
    }
    let output = run_measured(&mut command).context("cannot run mnemo import")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.success {
        bail!(
            "mnemo import failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let summary: Value = serde_json::from_slice(&output.stdout)?;
    Ok(Run {
        seconds,
        peak_rss_mib: output.peak_rss_kib as f64 / 1024.0,
        summary,
    })
}

/// What a child process printed, whether it succeeded, and its peak resident memory.
struct Measured {
    success: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    peak_rss_kib: u64,
}

/// Runs `command` to its end and reads the kernel's account of the child's peak RSS
/// (`wait4`'s `ru_maxrss`): the child's own figure, whatever it prints.
fn run_measured(command: &mut Command) -> anyhow::Result<Measured> {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Both pipes drained while the child runs, so that neither fills and blocks it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let pid = libc::pid_t::try_from(child.id()).context("the child's pid")?;
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of that plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not waited for yet; both pointers are to live locals.
        let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if waited == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error).context("waiting for the child");
        }
    }
    let joined = |handle: std::thread::JoinHandle<Vec<u8>>| handle.join().unwrap_or_default();
    Ok(Measured {
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stdout: joined(stdout),
        stderr: joined(stderr),
        // Linux reports it in KiB.
        peak_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    })
}

/// The `mnemo` binary beside this one (both are built into the same folder).
fn mnemo_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name("mnemo");
    anyhow::ensure!(
        path.is_file(),
        "{} not found: build it first (cargo build --release)",
        path.display()
    );
    Ok(path)
}

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let mnemo = mnemo_binary()?;
    let temporary = tempfile::tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temporary.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    println!(
        "mnemo-bench import: legacy task_vectors.json ({}-d, PowerShell layout), `mnemo import` in a child process, median of {}",
        args.dim, args.repeat
    );
    println!(
        "{:>8} {:>7} {:>9} {:>9} {:>10} {:>9} {:>10} {:>8} {:>12}",
        "file MB",
        "tasks",
        "import s",
        "MB/s",
        "points/s",
        "peak MiB",
        "vectors MiB",
        "RSS/vec",
        "json.load s"
    );
    for &megabytes in &args.sizes {
        let file = dir.join(format!("task_vectors_{megabytes}mb.json"));
        let tasks = write_legacy(&file, megabytes, args.dim)?;
        let bytes = std::fs::metadata(&file)?.len();
        let data = dir.join(format!("data_{megabytes}"));
        let mut seconds = Vec::new();
        let mut peaks = Vec::new();
        let mut last = None;
        for _ in 0..args.repeat {
            let run = import_once(&mnemo, &file, &data, args.no_optimize)?;
            seconds.push(run.seconds);
            peaks.push(run.peak_rss_mib);
            last = Some(run.summary);
        }
        let summary = last.unwrap_or_default();
        if summary["imported"].as_u64() != Some(tasks as u64) {
            bail!("imported {} of {tasks} tasks", summary["imported"]);
        }
        let time = median(&seconds);
        let peak = median(&peaks);
        let vectors_mib = (tasks * args.dim * 4) as f64 / (1024.0 * 1024.0);
        let reference = python_load(&args.python, &file);
        println!(
            "{:>8.1} {:>7} {:>9.2} {:>9.1} {:>10.0} {:>9.1} {:>10.1} {:>7.2}x {:>12}",
            bytes as f64 / 1e6,
            tasks,
            time,
            bytes as f64 / 1e6 / time,
            tasks as f64 / time,
            peak,
            vectors_mib,
            peak / vectors_mib,
            reference.map_or("-".into(), |s| format!("{s:.2}")),
        );
        println!(
            "         (in the child: check {:.2} s, write {:.2} s, search index {:.2} s; runs {:?} s)",
            summary["validate_seconds"].as_f64().unwrap_or(0.0),
            summary["write_seconds"].as_f64().unwrap_or(0.0),
            summary["index_seconds"].as_f64().unwrap_or(0.0),
            seconds
                .iter()
                .map(|s| (s * 100.0).round() / 100.0)
                .collect::<Vec<_>>()
        );
        std::fs::remove_file(&file)?;
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(())
}

/// Seconds Python's `json.load` takes on the file, or `None` without a Python.
fn python_load(python: &str, file: &Path) -> Option<f64> {
    if python == "none" {
        return None;
    }
    let script = "import json, sys, time\nt = time.perf_counter()\nwith open(sys.argv[1], encoding='utf-8-sig') as f: json.load(f)\nprint(time.perf_counter() - t)";
    let output = Command::new(python)
        .args(["-c", script])
        .arg(file)
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}
