#!/usr/bin/env bash
# Agents' memories: mnemo against mem0 on the same machine, the same texts, in one sitting.
# mem0 (PyPI `mem0ai`, pinned below) runs as its users run it offline: `infer=False` (no LLM),
# its Hugging Face embedder on the same local model folder, its default local vector store
# (Qdrant's local mode on disk) and history database (SQLite). mnemo runs in-process too
# (`mnemo-bench memory`). Both add the first MEMORIES task texts one call each, then time
# QUERIES searches of the next texts (top 10, one user's scope). Prints a table with adds/s,
# search p50/p95, the ratios, the mean top-10 overlap of the two, and mnemo's RSS with
# BULK more memories imported.
#
#   MEMORIES=10000 QUERIES=200 BULK=100000 bench/memory-vs-mem0.sh
#
# The venv goes to bench/.venv-mem0 (torch, as sentence-transformers needs; about 1 GB).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${MNEMO_SHARED_DIR:-$root/../shared}
memories=${MEMORIES:-10000}
queries=${QUERIES:-200}
bulk=${BULK:-100000}
threads=${THREADS:-2}
texts=$shared/bench/tasks-public.txt
venv=${MEM0_VENV:-$root/bench/.venv-mem0}
out=$root/bench/out/memory
model=${MNEMO_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mnemo/models/all-MiniLM-L6-v2}
requirements="mem0ai==2.2.1"

[[ -f "$texts" ]] || { echo "error: $texts not found (set MNEMO_SHARED_DIR)" >&2; exit 1; }
"$root/scripts/fetch-model.sh" >/dev/null
want="$(cat "$shared/bench/requirements.txt"; echo "$requirements")"
if [[ "$(cat "$venv/requirements.txt" 2>/dev/null)" != "$want" ]]; then
  echo "setting up mem0 in $venv (torch is large) ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$shared/bench/requirements.txt" "$requirements"
  echo "$want" > "$venv/requirements.txt"
fi
(cd "$root" && cargo build --release --quiet -p mnemo-bench)
mkdir -p "$out"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MEM0_TELEMETRY=False OMP_NUM_THREADS=$threads
# mem0 builds its default LLM client even when `infer=False` never calls it.
export OPENAI_API_KEY=${OPENAI_API_KEY:-unused-because-infer-is-off}

load() { cut -d' ' -f1 /proc/loadavg; }
echo "running mem0 ($memories adds, $queries searches), load $(load) ..." >&2
"$venv/bin/python" - "$texts" "$memories" "$queries" "$model" "$out" "$threads" <<'PY' > "$out/mem0.json"
import json, os, resource, sys, tempfile, time
texts, memories, queries, model, out, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
import torch
torch.set_num_threads(threads)
from mem0 import Memory
lines, seen = [], set()
for line in open(texts, encoding="utf-8"):
    line = line.strip()
    if line and line not in seen:
        seen.add(line)
        lines.append(line)
added, asked = lines[:memories], lines[memories:memories + queries]
work = tempfile.mkdtemp()
memory = Memory.from_config({
    "embedder": {"provider": "huggingface", "config": {"model": model, "embedding_dims": 384}},
    "vector_store": {"provider": "qdrant", "config": {
        "path": f"{work}/qdrant", "on_disk": True, "embedding_model_dims": 384, "collection_name": "bench"}},
    "history_db_path": f"{work}/history.db",
})
started = time.perf_counter()
for n, text in enumerate(added):
    memory.add(text, user_id="bench", infer=False)
    if (n + 1) % 1000 == 0:
        print(f"mem0: {n + 1} memories added", file=sys.stderr)
add_seconds = time.perf_counter() - started
memory.search(added[0], filters={"user_id": "bench"}, top_k=10)
latencies, results = [], []
for query in asked:
    started = time.perf_counter()
    found = memory.search(query, filters={"user_id": "bench"}, top_k=10, threshold=0.0)
    latencies.append(time.perf_counter() - started)
    results.append({"query": query, "results": [hit["memory"] for hit in found["results"]]})
latencies.sort()
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
with open(f"{out}/mem0-results.jsonl", "w") as f:
    for line in results:
        f.write(json.dumps(line) + "\n")
print(json.dumps({"engine": "mem0", "memories": memories, "add_seconds": add_seconds,
                  "adds_per_second": memories / add_seconds, "queries": len(asked),
                  "search_p50_ms": pick(0.5), "search_p95_ms": pick(0.95),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
PY
echo "running mnemo, load $(load) ..." >&2
"$root/target/release/mnemo-bench" memory --texts "$texts" --memories "$memories" --queries "$queries" \
  --bulk "$bulk" --threads "$threads" --results "$out/mnemo-results.jsonl" --json > "$out/mnemo.json"
echo "done, load $(load)" >&2

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
mem0, mnemo = (json.load(open(f"{out}/{name}.json")) for name in ("mem0", "mnemo"))
def results(name):
    return {row["query"]: row["results"] for row in map(json.loads, open(f"{out}/{name}-results.jsonl"))}
a, b = results("mem0"), results("mnemo")
overlaps = [len(set(a[q]) & set(b[q])) / max(1, len(a[q])) for q in a if q in b]
print(f"{mnemo['memories']} memories, {mnemo['queries']} searches (top 10), one scope")
print(f"{'':<8} {'adds/s':>10} {'search p50 ms':>14} {'search p95 ms':>14} {'peak RSS MiB':>13}")
for row in (mem0, mnemo):
    print(f"{row['engine']:<8} {row['adds_per_second']:>10.1f} {row['search_p50_ms']:>14.2f} "
          f"{row['search_p95_ms']:>14.2f} {row['peak_rss_mib']:>13.0f}")
print(f"mnemo / mem0: adds {mnemo['adds_per_second'] / mem0['adds_per_second']:.1f}x as fast, "
      f"search p50 {mnemo['search_p50_ms'] / mem0['search_p50_ms']:.2f}x the time")
print(f"top-10 overlap, mean over queries: {sum(overlaps) / len(overlaps):.3f}")
if mnemo.get("bulk_memories"):
    total = mnemo["memories"] + mnemo["bulk_memories"]
    print(f"mnemo with {total} memories: RSS {mnemo['rss_mib_with_bulk']:.0f} MiB "
          f"(bulk import {mnemo['bulk_memories'] / mnemo['bulk_seconds']:.0f} memories/s)")
PY
