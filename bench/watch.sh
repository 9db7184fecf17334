#!/usr/bin/env bash
# Plans kept current: how long from an editor's save to the saved task being found by search,
# on a copy of the shared corpus served by `mnemo serve` with `watch` set. EDITS times (20 by
# default): a new task appended to a random plan with an atomic save (a temporary file renamed
# over it), then searched every 20 ms until it is the first hit. In the same run, the baseline
# without the watcher: the same kind of edit followed by an explicit index job of the folder
# (`POST /api/v1/index`, what a script or the old cron did) until found. Prints the median and
# p95 of each, and their ratio.
#
#   EDITS=20 bench/watch.sh [target/release/mnemo]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${MNEMO_SHARED_DIR:-$root/../shared}
mnemo=${1:-$root/target/release/mnemo}
edits=${EDITS:-20}
[[ -d "$shared/corpus" ]] || { echo "error: $shared/corpus not found (set MNEMO_SHARED_DIR)" >&2; exit 1; }
[[ -x "$mnemo" ]] || { echo "error: $mnemo not built (make build)" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
cp -r "$shared/corpus" "$work/plans"
cat > "$work/mnemo.toml" <<TOML
index_roots = ["$work"]
watch = ["plans"]
TOML
"$mnemo" serve --bind 127.0.0.1:0 --data-dir "$work/data" --config "$work/mnemo.toml" > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 600); do grep -q "listening on" "$work/serve.log" && break; sleep 0.1; done
base=$(sed -n 's/^listening on //p' "$work/serve.log" | head -1)
[[ -n "$base" ]] || { cat "$work/serve.log" >&2; exit 1; }
python3 - "$base" "$work/plans" "$edits" <<'PY'
import json, os, random, statistics, sys, time, urllib.request, urllib.error
base, plans, edits = sys.argv[1], sys.argv[2], int(sys.argv[3])

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        return {"status": err.code}

def first_title(text):
    hits = call("POST", "/api/v1/collections/tasks/search", {"text": text, "limit": 1})
    result = hits.get("result") or []
    return result[0]["payload"].get("title", "") if result else ""

def wait_until_found(text, started, limit=60):
    while time.perf_counter() - started < limit:
        if text in first_title(text):
            return time.perf_counter() - started
        time.sleep(0.02)
    raise SystemExit(f"not found within {limit} s: {text}")

# The watcher's first job indexes the corpus; wait for it.
while True:
    jobs = call("GET", "/api/v1/jobs").get("jobs", [])
    if jobs and all(job["state"] in ("succeeded", "failed") for job in jobs):
        break
    time.sleep(0.2)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(plans) for f in fs if f.endswith(".md"))
rng = random.Random(7)
words = ["zorglub", "quasar", "blorpt", "frimousse", "gnagna", "trombine", "cacahuète", "zinzin"]

def edit(n, label):
    path = rng.choice(files)
    text = f"Vérifier le {rng.choice(words)} {label} numéro {n} {rng.randrange(10**9)}"
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        content = f.read()
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.swp")
    with open(temporary, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(content.rstrip("\n") + f"\n\n- [ ] {text}\n")
    started = time.perf_counter()
    os.replace(temporary, path)
    return text, started

watched = []
for n in range(edits):
    text, started = edit(n, "surveillé")
    watched.append(wait_until_found(text, started))
    time.sleep(0.3)
# Baseline: the watcher paused, each edit followed by an explicit index job of the folder.
call("POST", "/api/v1/components/watcher/actions/pause")
explicit = []
for n in range(edits):
    text, started = edit(n, "réindexé")
    call("POST", "/api/v1/index", {"paths": [plans]})
    explicit.append(wait_until_found(text, started))
call("POST", "/api/v1/components/watcher/actions/resume")

def row(name, values):
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return f"{name:<44} {statistics.median(values) * 1000:>9.0f} {p95 * 1000:>9.0f}"
print(f"{len(files)} plans, {edits} edits each way (ms from the rename to the first hit)")
print(f"{'':<44} {'median':>9} {'p95':>9}")
print(row("watcher (notify, debounced, one job)", watched))
print(row("baseline: explicit index job after the save", explicit))
print(f"ratio of medians (watcher / explicit): {statistics.median(watched) / statistics.median(explicit):.2f}")
PY
