#!/usr/bin/env bash
# Runs two mnemo binaries on the same real plans and says whether every answer is the same,
# byte for byte: the check that a refactoring changed no behaviour.
#
#   scripts/compare-behaviour.sh BASELINE_MNEMO [CANDIDATE_MNEMO] [--rest]
#   (CANDIDATE_MNEMO: target/release/mnemo by default)
#
#   MNEMO_SHARED_DIR   where shared/ is (default ../shared); its corpus/ is read
#   KEEP=1             keep the outputs (their folder is printed)
#
# Compared: `tasks --json` (with and without filters) over the whole corpus; then a part of
# the corpus indexed by each binary into its own data directory and `index --json`'s counts,
# `search --json` (dense, hybrid and keyword, with and without --filter), `similar --json`,
# `dupes --json` and `export` (jsonl, npy, qdrant) on it. Timings (`*_seconds`) and the time
# each point was indexed (`indexed_at`) are the only fields left out. The REST answers are compared by `crates/mnemo/tests/serve.rs` run twice
# with MNEMO_RECORD_ANSWERS (see that file), which `--rest` does here too.
set -euo pipefail
cd "$(dirname "$0")/.."

rest=0
positional=()
for arg in "$@"; do
  if [[ $arg == --rest ]]; then rest=1; else positional+=("$arg"); fi
done
baseline=${positional[0]:?usage: $0 BASELINE_MNEMO [CANDIDATE_MNEMO] [--rest]}
candidate=${positional[1]:-target/release/mnemo}
shared=${MNEMO_SHARED_DIR:-../shared}
corpus="$shared/corpus"
[[ -x "$baseline" ]] || { echo "error: $baseline is not an executable mnemo" >&2; exit 1; }
[[ -x "$candidate" ]] || { echo "error: $candidate is not an executable mnemo (cargo build --release)" >&2; exit 1; }
[[ -d "$corpus" ]] || { echo "error: no corpus at $corpus (set MNEMO_SHARED_DIR)" >&2; exit 1; }
corpus=$(cd "$corpus" && pwd)
roadmaps="$corpus/email-sender-1/roadmaps"
# What is indexed: a few thousand tasks of several kinds (plans, journal entries, a folder
# whose name holds a space) in well under a minute.
indexed=("$roadmaps/plans/completed" "$roadmaps/journal" "$roadmaps/mes-plans")

work=$(mktemp -d "${TMPDIR:-/tmp}/mnemo-compare.XXXXXX")
if [[ "${KEEP:-0}" == 1 ]]; then echo "outputs kept in $work"; else trap 'rm -rf "$work"' EXIT; fi

# Timings differ from run to run; everything else must not.
without_timings() {
  python3 -c '
import json, sys
def strip(value):
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if not k.endswith("_seconds")}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value
print(json.dumps(strip(json.load(sys.stdin)), ensure_ascii=False, indent=1))'
}

queries=(
  "ne pas recalculer les embeddings des questions déjà posées"
  "cache des requêtes"
  "write the API documentation"
  "migration vers Qdrant"
  "tests d'intégration"
  "2.1.2"
  "monitoring alertes"
)
filters=("status=open" "status in (done, in_progress) and priority <= 2")

# Each binary indexes into its own data directory (its counts and exports are compared), but
# both answer questions from the one the baseline built: points of equal score come back in
# the store's internal order, which differs between two builds of the same index.
run_one() { # run_one LABEL BINARY
  local label=$1 bin=$2 out="$work/$1" data="$work/$1-data"
  mkdir -p "$out"
  local -a own=(--data-dir "$data") at=(--data-dir "$work/baseline-data")
  "$bin" tasks --json "$corpus" > "$out/tasks.jsonl" 2> "$out/tasks.stderr" || echo "exit $?" >> "$out/tasks.stderr"
  "$bin" tasks --json --status open,blocked --section phase "$corpus" > "$out/tasks-filtered.jsonl" 2>&1 || true
  "$bin" tasks --summary "$corpus" > "$out/tasks-summary.txt" 2>&1 || true
  "$bin" index --json "${indexed[@]}" "${own[@]}" 2> /dev/null | without_timings > "$out/index.json"
  local i=0 query mode filter
  for query in "${queries[@]}"; do
    i=$((i + 1))
    for mode in dense hybrid keyword; do
      "$bin" search --json --mode "$mode" --limit 15 "$query" "${at[@]}" > "$out/search-$i-$mode.jsonl" 2>&1 || true
      "$bin" search --mode "$mode" --limit 5 "$query" "${at[@]}" > "$out/search-$i-$mode.txt" 2>&1 || true
      for filter in "${filters[@]}"; do
        "$bin" search --json --mode "$mode" --filter "$filter" "$query" "${at[@]}" >> "$out/search-$i-$mode-filtered.jsonl" 2>&1 || true
      done
    done
    "$bin" search --json --collection passages "$query" "${at[@]}" > "$out/search-$i-passages.jsonl" 2>&1 || true
  done
  # Similar to the first hits of each query, by task id and by point id.
  local task_id point_id
  for i in $(seq 1 ${#queries[@]}); do
    task_id=$(head -1 "$out/search-$i-dense.jsonl" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read() or "{}").get("task_id",""))')
    point_id=$(head -1 "$out/search-$i-hybrid.jsonl" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read() or "{}").get("id",""))')
    [[ -n "$task_id" ]] && "$bin" similar --json --limit 8 "$task_id" "${at[@]}" > "$out/similar-$i-task.jsonl" 2>&1 || true
    [[ -n "$point_id" ]] && "$bin" similar --json --filter "status=open" "$point_id" "${at[@]}" > "$out/similar-$i-point.jsonl" 2>&1 || true
  done
  "$bin" search --filter "status=" "x" "${at[@]}" > "$out/error-filter.txt" 2>&1 || true
  "$bin" similar "no-such-task" "${at[@]}" > "$out/error-similar.txt" 2>&1 || true
  "$bin" search "x" --collection nothing "${at[@]}" > "$out/error-collection.txt" 2>&1 || true
  "$bin" dupes --json "${at[@]}" > "$out/dupes.jsonl" 2>&1 || true
  "$bin" dupes --json --threshold 0.95 --neighbours 5 --filter "status=done" "${at[@]}" > "$out/dupes-filtered.jsonl" 2>&1 || true
  "$bin" dupes --threshold 0.97 --limit 5 "${at[@]}" > "$out/dupes.txt" 2>&1 || true
  (cd "$out" && "$bin" export --collection tasks --format jsonl -o tasks-export.jsonl "${own[@]}" > /dev/null 2>&1 || true)
  (cd "$out" && "$bin" export --collection tasks --format npy -o tasks-export.npy "${own[@]}" > /dev/null 2>&1 || true)
  (cd "$out" && "$bin" export --collection passages --format qdrant -o passages-export.json "${own[@]}" > /dev/null 2>&1 || true)
}

echo "baseline:  $baseline"
echo "candidate: $candidate"
run_one baseline "$baseline"
run_one candidate "$candidate"

# Each indexed point records when it was indexed: the one field of the answers that is a clock.
for file in "$work"/baseline/* "$work"/candidate/*; do
  sed -i -E 's/"indexed_at": ?"[^"]*"/"indexed_at":"<time>"/g' "$file"
done

status=0
compared=0
for file in "$work"/baseline/*; do
  name=$(basename "$file")
  compared=$((compared + 1))
  if ! cmp -s "$file" "$work/candidate/$name"; then
    echo "DIFFERENT: $name"
    diff <(head -c 2000 "$file") <(head -c 2000 "$work/candidate/$name") | head -20 || true
    status=1
  fi
done
for file in "$work"/candidate/*; do
  [[ -e "$work/baseline/$(basename "$file")" ]] || { echo "ONLY IN CANDIDATE: $(basename "$file")"; status=1; }
done
tasks=$(wc -l < "$work/baseline/tasks.jsonl")
hits=$(cat "$work"/baseline/search-*.jsonl | wc -l)
echo "$compared outputs compared ($tasks tasks listed, $hits search hits, $(wc -l < "$work/baseline/dupes.jsonl") duplicate clusters)"

if [[ $rest == 1 ]]; then
  # The REST answers of the serve test, recorded against each binary by the same test code.
  for label in baseline candidate; do
    bin=$baseline; [[ $label == candidate ]] && bin=$candidate
    MNEMO_BIN=$(realpath "$bin") MNEMO_RECORD_ANSWERS="$work/rest-$label.txt" \
      cargo test --release -q -p mnemo --test serve -- --test-threads 1 > "$work/rest-$label.log" 2>&1 \
      || { echo "the serve test failed against $label (log: $work/rest-$label.log)"; status=1; }
  done
  if cmp -s "$work/rest-baseline.txt" "$work/rest-candidate.txt"; then
    echo "REST: $(wc -l < "$work/rest-baseline.txt") answers identical"
  else
    echo "REST: DIFFERENT"; diff "$work/rest-baseline.txt" "$work/rest-candidate.txt" | head -20 || true
    status=1
  fi
fi

if [[ $status == 0 ]]; then echo "IDENTICAL"; fi
exit $status
