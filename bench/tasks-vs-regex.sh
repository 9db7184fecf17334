#!/usr/bin/env bash
# Plan reading: mnemo against the old stack's one-regex Python parser, same files, same
# machine, one run. Usage: bench/tasks-vs-regex.sh [PATH...] (default: the shared corpus).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
shared="${MNEMO_SHARED_DIR:-$root/../shared}"
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=("$shared/corpus")
repeat="${REPEAT:-10}"

cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p mnemo
baseline="$(python3 "$here/parse-baseline.py" --repeat "$repeat" "${paths[@]}")"
mnemo="$("$root/target/release/mnemo-bench" tasks --json --repeat "$repeat" "${paths[@]}")"
one_thread="$(RAYON_NUM_THREADS=1 "$root/target/release/mnemo-bench" tasks --json --repeat "$repeat" "${paths[@]}")"

python3 - "$baseline" "$mnemo" "$one_thread" <<'PY'
import json, sys
rows = [json.loads(arg) for arg in sys.argv[1:]]
rows[2]["engine"] = "mnemo (1 thread)"
print(f"{'engine':<18} {'files':>6} {'tasks':>7} {'threads':>7} {'median ms':>10} {'MB/s':>7}")
for row in rows:
    print(f"{row['engine']:<18} {row['files']:>6} {row['tasks']:>7} {row['threads']:>7} {row['median_ms']:>10.1f} {row['mb_per_s']:>7.1f}")
base = rows[0]
for row in rows[1:]:
    print(f"{row['engine']}: {row['tasks'] / max(base['tasks'], 1):.1f}x the tasks found, "
          f"{row['median_ms'] / base['median_ms']:.2f}x the baseline's time")
PY
