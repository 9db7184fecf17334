#!/usr/bin/env bash
# Paraphrased questions over the whole shared corpus, in French and in English: hit@1, hit@10
# and MRR per language, search mode and model, for a build and, in the same run, a baseline
# build. The questions are bench/eval/corpus-fr.jsonl and corpus-en.jsonl: 107 tasks of the
# corpus, each with a French paraphrase and an English query written without the task's
# words; corpus-titles.jsonl (each task's own title) checks that the labels point where they
# should. The baseline indexes first; the build then indexes a copy of the baseline's store,
# as an upgrade would (vectors reused, keyword vectors analysed again).
#
#   MODELS="all-MiniLM-L6-v2 all-mpnet-base-v2" bench/eval-french.sh [MNEMO [BASELINE_MNEMO]]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${MNEMO_SHARED_DIR:-$root/../shared}
mnemo=${1:-$root/target/release/mnemo}
baseline=${2:-}
models=${MODELS:-all-MiniLM-L6-v2}
[[ -d "$shared/corpus" ]] || { echo "error: $shared/corpus not found (set MNEMO_SHARED_DIR)" >&2; exit 1; }
[[ -x "$mnemo" ]] || { echo "error: $mnemo not built (make build)" >&2; exit 1; }
# WORK=DIR keeps the stores there and reuses the baseline's on the next run.
if [[ -n "${WORK:-}" ]]; then
  work=$WORK
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi

scores() { # build label, binary, data dir, model
  local label=$1 binary=$2 data=$3 model=$4 set
  for set in titles fr en; do
    "$binary" eval --queries "$root/bench/eval/corpus-$set.jsonl" --data-dir "$data" \
      --model "$model" --mode dense --mode hybrid --mode keyword --json |
      python3 -c '
import json, sys
label, set_name = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    s = json.loads(line)
    print("{:<9} {:<18} {:<7} {:<8} hit@1 {:.3f}  hit@10 {:.3f}  MRR {:.3f}".format(
        label, s["model"], set_name, s["mode"], s["hit_at_1"], s["hit_at_10"], s["mrr"]))
' "$label" "$set"
  done
}

for model in $models; do
  if [[ -n "$baseline" && ! -d "$work/$model" ]]; then
    start=$(date +%s)
    "$baseline" index "$shared/corpus" --tasks-only --model "$model" --data-dir "$work/$model" --json > /dev/null
    echo "# $model: baseline indexed the corpus in $(( $(date +%s) - start )) s" >&2
  fi
  if [[ -n "$baseline" ]]; then
    scores baseline "$baseline" "$work/$model" "$model"
    rm -rf "$work/$model-build"
    cp -r "$work/$model" "$work/$model-build"
  fi
  start=$(date +%s)
  "$mnemo" index "$shared/corpus" --tasks-only --model "$model" --data-dir "$work/$model-build" --json > /dev/null
  echo "# $model: build indexed the corpus in $(( $(date +%s) - start )) s" >&2
  scores build "$mnemo" "$work/$model-build" "$model"
done
