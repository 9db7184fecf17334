#!/usr/bin/env bash
# mnemo's embedder against sentence-transformers on the same machine, the same texts, in one
# sitting: the torch engine (the reference), the ONNX Runtime engine of the shared baseline
# script, and `mnemo-bench embed`. Prints one table with texts/s, the ratio to the faster
# baseline, and parity (min cosine of mnemo's vectors against torch's on every text).
#
#   LIMIT=3000 THREADS=2 BATCH=32 bench/embed-vs-sentence-transformers.sh
#   MODEL=all-mpnet-base-v2 LIMIT=600 bench/embed-vs-sentence-transformers.sh
#
# Needs ../shared/bench (the baseline script and its pinned requirements); the venv goes to
# bench/.venv (about 1 GB with torch) and is reused by later runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${MNEMO_SHARED_DIR:-$root/../shared}
limit=${LIMIT:-3000}
threads=${THREADS:-2}
batch=${BATCH:-32}
texts=$shared/bench/tasks-public.txt
venv=$root/bench/.venv
name=${MODEL:-all-MiniLM-L6-v2}
if [[ "$name" == all-MiniLM-L6-v2 && -n "${MNEMO_MODEL_DIR:-}" ]]; then
  model=$MNEMO_MODEL_DIR
else
  model=${XDG_CACHE_HOME:-$HOME/.cache}/mnemo/models/$name
fi
out=$root/bench/out/$name

[[ -f "$shared/bench/st_embed_baseline.py" ]] || { echo "error: $shared/bench not found (set MNEMO_SHARED_DIR)" >&2; exit 1; }
"$root/scripts/fetch-model.sh" "$name" >/dev/null
if ! cmp -s "$shared/bench/requirements.txt" "$venv/requirements.txt" 2>/dev/null; then
  echo "setting up the baseline venv in $venv (torch is large) ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$shared/bench/requirements.txt"
  cp "$shared/bench/requirements.txt" "$venv/requirements.txt"
fi
(cd "$root" && cargo build --release --quiet)
mkdir -p "$out"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

load() { cut -d' ' -f1 /proc/loadavg; }
baseline() { # baseline ENGINE [extra args]
  local engine=$1; shift
  echo "running sentence-transformers ($engine), load $(load) ..." >&2
  "$venv/bin/python" "$root/bench/st_baseline_any_model.py" "$shared/bench/st_embed_baseline.py" --model "$model" --texts "$texts" \
    --limit "$limit" --threads "$threads" --batch-size "$batch" --engine "$engine" \
    --onnx-cache "$out/onnx" "$@" | tail -n 1 > "$out/$engine.json"
}
baseline torch --out "$out/torch-vectors.jsonl"
baseline onnx
echo "running mnemo, load $(load) ..." >&2
"$root/target/release/mnemo-bench" embed --model "$name" --texts "$texts" --limit "$limit" --threads "$threads" --json > "$out/mnemo.json"
echo "checking parity against torch's vectors ..." >&2
"$venv/bin/python" -c '
import json, sys
with open(sys.argv[1]) as f:
    for line in f:
        print(json.dumps({"text": json.loads(line)["text"]}))
' "$out/torch-vectors.jsonl" > "$out/texts.jsonl"
"$root/target/release/mnemo" embed --model "$name" --threads "$threads" --input "$out/texts.jsonl" > "$out/mnemo-vectors.jsonl" 2>/dev/null
echo "done, load $(load)" >&2

"$venv/bin/python" - "$out" "$model" <<'PY'
import json, sys
import numpy as np
out, model = sys.argv[1], sys.argv[2]
rows = {e: json.load(open(f"{out}/{e}.json")) for e in ("torch", "onnx", "mnemo")}
ref = np.array([json.loads(l)["embedding"] for l in open(f"{out}/torch-vectors.jsonl")], dtype=np.float64)
got = np.array([json.loads(l)["embedding"] for l in open(f"{out}/mnemo-vectors.jsonl")], dtype=np.float64)
cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
cfg = json.load(open(f"{model}/config.json"))
h, i, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
flop_per_token = 2 * layers * (4 * h * h + 2 * h * i)
texts, tokens = rows["mnemo"]["texts"], rows["mnemo"]["tokens"]
# The roof the issue states: two cores at about 100 GFLOP/s each on f32 matrix products.
ceiling = 2 * 100e9 / (flop_per_token * tokens / texts)
best = max(rows["torch"]["texts_per_s"], rows["onnx"]["texts_per_s"])
print(f"\n{texts} texts, {tokens} word pieces, {rows['mnemo']['threads']} threads; "
      f"{flop_per_token/1e6:.1f} MFLOP per word piece; ceiling ~{ceiling:.0f} texts/s\n")
print(f"| engine | median s | runs (s) | texts/s | word pieces/s | CPU-s | vs faster baseline |")
print(f"| --- | --- | --- | --- | --- | --- | --- |")
for name, label in (("torch", "sentence-transformers (torch)"), ("onnx", "sentence-transformers (ONNX Runtime)"), ("mnemo", "mnemo")):
    r = rows[name]
    runs = ", ".join(f"{s:.1f}" for s in r["seconds_all"])
    cpu = r.get("cpu_seconds_median")
    cpu = f"{cpu:.1f}" if cpu is not None else "-"
    print(f"| {label} | {r['seconds_median']:.2f} | {runs} | {r['texts_per_s']:.1f} | {r['tokens_per_s']:.0f} | {cpu} | {r['texts_per_s']/best:.2f}x |")
m = rows["mnemo"]
print(f"\nmnemo: {m['texts_per_s']/best:.2f}x the faster baseline, {m['texts_per_s']/ceiling:.0%} of the ceiling; "
      f"single text p50 {m['single_p50_ms']:.1f} ms, p95 {m['single_p95_ms']:.1f} ms")
print(f"parity vs torch over {len(cos)} texts: min cosine {cos.min():.9f}, max |diff| {np.abs(ref-got).max():.2e}; "
      f"ONNX vs torch min cosine {rows['onnx'].get('min_cosine_vs_torch')}")
PY
