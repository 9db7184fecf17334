#!/usr/bin/env bash
# A remote embedder against the local one: what embedding through another server costs per
# text. Two `mnemo serve` on loopback: a backend, and a front whose `[models.remote]` is the
# backend's /v1/embeddings (the same all-MiniLM-L6-v2, so the vectors match). In one run,
# ROUNDS (5) times each: N (2,000) task texts through the front's /v1/embeddings as
# `all-MiniLM-L6-v2` (local, in the front) and as `remote` (batches of 64, 4 at once, to the
# backend). Prints the medians, texts/s and the overhead per text.
#
#   N=2000 ROUNDS=5 bench/remote-embed.sh [target/release/mnemo]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${MNEMO_SHARED_DIR:-$root/../shared}
mnemo=${1:-$root/target/release/mnemo}
count=${N:-2000}
rounds=${ROUNDS:-5}
[[ -f "$shared/bench/tasks-public.txt" ]] || { echo "error: $shared/bench/tasks-public.txt not found" >&2; exit 1; }
[[ -x "$mnemo" ]] || { echo "error: $mnemo not built (make build)" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $backend $front 2>/dev/null || true; rm -rf "$work"' EXIT
start() { # name, config → URL
  "$mnemo" serve --bind 127.0.0.1:0 --data-dir "$work/$1" --config "$2" > "$work/$1.log" 2>&1 &
  echo $! > "$work/$1.pid"
  for _ in $(seq 600); do grep -q "listening on" "$work/$1.log" && break; sleep 0.1; done
}
printf 'rate_limit = { per_second = 0, burst = 1 }\n' > "$work/backend.toml"
start backend "$work/backend.toml"; backend=$(cat "$work/backend.pid")
backend_url=$(sed -n 's/^listening on //p' "$work/backend.log" | head -1)
cat > "$work/front.toml" <<TOML
rate_limit = { per_second = 0, burst = 1 }
[models.remote]
provider = "openai"
url = "$backend_url"
model = "all-MiniLM-L6-v2"
dimension = 384
batch_size = 64
max_concurrency = 4
TOML
start front "$work/front.toml"; front=$(cat "$work/front.pid")
front_url=$(sed -n 's/^listening on //p' "$work/front.log" | head -1)
python3 - "$front_url" "$shared/bench/tasks-public.txt" "$count" "$rounds" <<'PY'
import json, statistics, sys, time, urllib.request
url, path, count, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
texts = [line.strip() for line in open(path, encoding="utf-8") if line.strip()][:count]
def embed(model, chunk):
    body = json.dumps({"model": model, "input": chunk}).encode()
    request = urllib.request.Request(url + "/v1/embeddings", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as answer:
        return json.load(answer)["data"]
times = {"all-MiniLM-L6-v2": [], "remote": []}
for _ in range(rounds):
    for model in times:
        started = time.perf_counter()
        for i in range(0, len(texts), 256):  # the front's max_batch
            embed(model, texts[i:i + 256])
        times[model].append(time.perf_counter() - started)
local, remote = (statistics.median(times[m]) for m in ("all-MiniLM-L6-v2", "remote"))
print(f"{len(texts)} texts, median of {rounds}")
print(f"local  (in the front):        {local:6.2f} s  {len(texts) / local:7.1f} texts/s")
print(f"remote (openai → backend):    {remote:6.2f} s  {len(texts) / remote:7.1f} texts/s")
print(f"overhead {1000 * (remote - local) / len(texts):.3f} ms per text; remote/local {remote / local:.2f}x")
PY
