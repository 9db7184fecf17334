//! `scripts/fetch-model.sh`, the only code that downloads: a damaged model folder is
//! replaced by a verified one, and a failed download installs nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-model.sh")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mnemo-fetch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_damaged_model_folder_is_fetched_again_and_verified() {
    let root = temp_dir("damaged");
    let model = root.join("model");
    std::fs::create_dir_all(&model).expect("model dir");
    // A partial download: a truncated weights file and nothing else.
    std::fs::write(model.join("model.safetensors"), b"partial").expect("write");
    let output = Command::new("bash")
        .arg(script())
        .env("MNEMO_MODEL_DIR", &model)
        .output()
        .expect("the script runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        sha256(&model.join("model.safetensors")),
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    );
    assert!(
        model.join("tokenizer.json").is_file() && model.join("1_Pooling/config.json").is_file()
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_failed_download_fails_loudly_and_installs_nothing() {
    let root = temp_dir("failed");
    let model = root.join("model");
    let output = Command::new("bash")
        .arg(script())
        .env("MNEMO_MODEL_DIR", &model)
        .env("PYTHON", "false")
        .output()
        .expect("the script runs");
    assert!(
        !output.status.success(),
        "a failed download must fail the script"
    );
    assert!(
        !model.exists(),
        "nothing may be installed after a failed download"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&root).expect("read").collect();
    assert!(
        leftovers.is_empty(),
        "no temporary folder is left behind: {leftovers:?}"
    );
    std::fs::remove_dir_all(&root).ok();
}
