//! `mnemo nearest`: each line's most similar other lines, by cosine of their embeddings.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use mnemo::args::ModelArgs;

#[derive(Args)]
pub struct NearestArgs {
    /// Text file, one text per line [default: standard input]
    #[arg(long, short)]
    input: Option<PathBuf>,
    /// Neighbours shown per line
    #[arg(long, default_value_t = 2)]
    top: usize,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(args: NearestArgs) -> anyhow::Result<()> {
    let body = match &args.input {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => {
            let mut body = String::new();
            std::io::stdin()
                .read_to_string(&mut body)
                .context("cannot read standard input")?;
            body
        }
    };
    let texts: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if texts.len() < 2 {
        bail!(
            "need at least two non-blank lines to compare, found {}",
            texts.len()
        );
    }
    let embedder = args.model.load(None, None)?;
    let embeddings = embedder.embed(&texts)?;
    for (i, text) in texts.iter().enumerate() {
        // Vectors are unit length, so the dot product is the cosine.
        let mut scored: Vec<(f32, usize)> = (0..texts.len())
            .filter(|&j| j != i)
            .map(|j| (dot(embeddings.row(i), embeddings.row(j)), j))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!("{text}");
        for (score, j) in scored.into_iter().take(args.top) {
            println!("    {score:.3}  {}", texts[j]);
        }
    }
    Ok(())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
