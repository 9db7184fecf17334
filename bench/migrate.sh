#!/usr/bin/env bash
# Moving a collection to another model: `mnemo model migrate` of the tasks of FILES plans of
# the shared corpus (30 by default) from all-MiniLM-L6-v2 to all-mpnet-base-v2, beside the
# baseline of the same run, indexing those plans from scratch with all-mpnet-base-v2 (what
# moving a collection costs without mnemo: a new index and a cut-over by hand). Prints both
# times and peak memory (RSS), the migration's texts/s, and its A/B report on labelled queries made from the plans
# (each of EVAL tasks' title as the query, its file:line expected: a sanity check that both
# models find a task by its own words, not a relevance benchmark).
#
#   FILES=30 EVAL=40 bench/migrate.sh [target/release/mnemo]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${MNEMO_SHARED_DIR:-$root/../shared}
mnemo=${1:-$root/target/release/mnemo}
files=${FILES:-30}
eval_count=${EVAL:-40}
[[ -d "$shared/corpus" ]] || { echo "error: $shared/corpus not found (set MNEMO_SHARED_DIR)" >&2; exit 1; }
[[ -x "$mnemo" ]] || { echo "error: $mnemo not built (make build)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/plans"
# The same files every run: the first FILES in name order, with their folders flattened.
find "$shared/corpus" -name '*.md' | sort | head -n "$files" | while read -r path; do
  cp "$path" "$work/plans/$(echo "${path#"$shared/corpus/"}" | tr '/' '_')"
done
"$mnemo" index "$work/plans" --tasks-only --data-dir "$work/minilm" --json > "$work/index.json"
tasks=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tasks"])' "$work/index.json")
"$mnemo" tasks "$work/plans" --json > "$work/tasks.jsonl" 2> /dev/null
python3 - "$work/tasks.jsonl" "$eval_count" > "$work/eval.jsonl" <<'PY'
import json, random, sys
tasks = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
tasks = [t for t in tasks if len(t.get("title", "").split()) >= 3]
random.Random(7).shuffle(tasks)
for task in tasks[: int(sys.argv[2])]:
    name = task["file"].rsplit("/", 1)[-1]
    print(json.dumps({"query": task["title"], "expected": [f"{name}:{task['line']}"]}, ensure_ascii=False))
PY
echo "$files plans, $tasks tasks, $(wc -l < "$work/eval.jsonl") labelled queries"

start=$(date +%s.%N)
/usr/bin/time -f %M -o "$work/baseline.rss" "$mnemo" index "$work/plans" --tasks-only --model all-mpnet-base-v2 --data-dir "$work/mpnet" --json > /dev/null
baseline=$(echo "$(date +%s.%N) - $start" | bc)
start=$(date +%s.%N)
/usr/bin/time -f %M -o "$work/migration.rss" "$mnemo" model migrate --to all-mpnet-base-v2 --eval "$work/eval.jsonl" --data-dir "$work/minilm" --json > "$work/report.json" 2> /dev/null
migration=$(echo "$(date +%s.%N) - $start" | bc)
python3 - "$work/report.json" "$baseline" "$migration" "$work/baseline.rss" "$work/migration.rss" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
baseline, migration = float(sys.argv[2]), float(sys.argv[3])
rss = [int(open(path).read().split()[-1]) / 1024 for path in sys.argv[4:6]]
print(f"baseline, fresh index with all-mpnet-base-v2: {baseline:.1f} s, max RSS {rss[0]:.0f} MiB")
print(f"migration max RSS {rss[1]:.0f} MiB")
print(f"mnemo model migrate (shadow built, caught up, compared): {migration:.1f} s, "
      f"{report['points_target']} points, {report['embedded']} embedded, "
      f"{report['embedded'] / migration:.1f} texts/s; {migration / baseline:.2f}x the baseline")
print(f"canary top-10 overlap between the models: {report['ab']['canary_top10_overlap']:.2f}")
for score in report["ab"]["eval"]:
    print(f"  {score['model']:<20} {score['mode']:<7} hit@1 {score['hit_at_1']:.3f} "
          f"hit@10 {score['hit_at_10']:.3f} MRR {score['mrr']:.3f}")
PY
