#!/usr/bin/env bash
# The API against real outside clients: the official `openai` client and an OpenAPI
# validator (test_api.py), then schemathesis fuzzing every route from /openapi.json for a
# bounded number of cases, failing on any 5xx or crash; then HTTPS against a test CA with curl,
# `openai` and the CLI (test_tls.py); then `mnemo import` and `export`
# against .npy files and pickles written by numpy and Python (test_import.py); Qdrant's REST API
# through Qdrant's own clients, against mnemo and the real Qdrant server (test_qdrant_api.py).
# Run by `make test`.
#
#   MNEMO_BIN        the binary to serve (default target/release/mnemo)
#   MNEMO_API_VENV   the venv the pinned clients go into (default ~/.cache/mnemo/api-test-venv)
#   FUZZ_EXAMPLES    cases per operation (default 25)
#
# `run.sh --install-only` only makes the venv: `make test` does that while Rust builds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
binary="${MNEMO_BIN:-$root/target/release/mnemo}"
venv="${MNEMO_API_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mnemo/api-test-venv}"
examples="${FUZZ_EXAMPLES:-25}"
python="${PYTHON:-python3}"

# The venv is rebuilt only when the pinned requirements change.
stamp="$venv/requirements.sha256"
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "installing the API test clients into $venv ..."
  rm -rf "$venv"
  if "$python" -m venv "$venv" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  else
    # No ensurepip (Debian without python3-venv): an empty venv, filled by the system's pip,
    # which fetching the model needs anyway.
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
    "$python" -m pip --python "$venv/bin/python" install --quiet --disable-pip-version-check \
      -r "$here/requirements.txt"
  fi
  echo "$want" > "$stamp"
fi
[[ "${1:-}" == --install-only ]] && exit 0

work=$(mktemp -d)
server_pid=
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

: > "$work/serve.out"  # there before the server's shell opens it: the loop below reads it
"$binary" serve --bind 127.0.0.1:0 --data-dir "$work/data" > "$work/serve.out" 2> "$work/serve.err" &
server_pid=$!
for _ in $(seq 1 300); do
  base=$(sed -n 's/^listening on //p' "$work/serve.out")
  [[ -n "$base" ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$base" ]] || { echo "mnemo serve did not start" >&2; exit 1; }

# Something to find, so that searches and scrolls reach the store and not only 404s.
curl -sf -X PUT "$base/api/v1/collections/notes" > /dev/null
curl -sf -X PUT "$base/api/v1/collections/notes/points" -H 'content-type: application/json' \
  -d '{"points": [{"id": 1, "text": "Ajouter un cache LRU", "payload": {"status": "open"}},
                  {"id": 2, "text": "Écrire la documentation", "payload": {"status": "done"}}]}' > /dev/null

"$venv/bin/python" "$here/test_api.py" "$base" "$binary"

# From the scratch folder: schemathesis keeps a cache in the working directory. The event
# stream is left out: it answers by never ending (tests/python/test_api.py reads it).
(cd "$work" && "$venv/bin/schemathesis" run "$base/openapi.json" \
  --checks not_a_server_error \
  --exclude-path /api/v1/events/stream \
  --max-examples "$examples" --seed 20261126 \
  --request-timeout 70 --no-color)

kill -0 "$server_pid" || { echo "the server died during the fuzzing" >&2; cat "$work/serve.err" >&2; exit 1; }
kill -TERM "$server_pid"
wait "$server_pid"
server_pid=
grep -q "stopped; the store is flushed" "$work/serve.out"
echo "API clients and fuzzing: passed"

"$venv/bin/python" "$here/test_tls.py" "$binary"

# Agents' memories and the plan index through the official MCP SDK, over HTTP and stdio.
"$venv/bin/python" "$here/test_mcp.py" "$binary"

# Qdrant's REST API through qdrant-client, LangChain and LlamaIndex, against mnemo and against
# the real Qdrant server from the shared folder: the same answers from both.
shared="${MNEMO_SHARED_DIR:-$root/../shared}"
if [[ -f "$shared/qdrant/qdrant.xz" ]]; then
  "$venv/bin/python" "$here/test_qdrant_api.py" "$binary" "$shared"
elif [[ "${MNEMO_REQUIRE_QDRANT:-}" == 1 ]]; then
  echo "MNEMO_REQUIRE_QDRANT=1 but $shared/qdrant/qdrant.xz does not exist" >&2
  exit 1
else
  echo "SKIPPED: Qdrant's API against the real Qdrant server: no $shared/qdrant/qdrant.xz (set MNEMO_SHARED_DIR)"
fi

# Files that Python itself writes (numpy's .npy, pickles) through mnemo import and export.
"$venv/bin/python" "$here/test_import.py" "$binary"
