#!/usr/bin/env bash
# scripts/patch-qdrant-edge.sh as a fresh machine runs it: Cargo has never run there, so its
# registry cache does not exist. Two cases, each in a copy of the repository with an empty
# CARGO_HOME (fetching only, no build):
#   1. offline: the fetch fails, and the script says what failed and what to do (it used to
#      stop at once with no message at all);
#   2. online: it fetches, finds the crate, checks its checksum and writes the patched copy.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/mnemo-patch-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if (( minor >= 96 )); then
  echo "patch-qdrant-edge: rustc 1.$minor needs no patch; nothing to test"
  exit 0
fi

copy() { # copy DIR: the files of the working tree git does not ignore, nothing built
  mkdir -p "$1"
  (cd "$root" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' file; do [[ -e $file ]] && printf '%s\0' "$file"; done \
    | xargs -0 cp --parents -t "$1")
}

copy "$work/offline"
if out=$(CARGO_HOME="$work/offline-home" CARGO_NET_OFFLINE=true "$work/offline/scripts/patch-qdrant-edge.sh" 2>&1); then
  echo "FAILED: the script succeeded offline with no registry cache:"; echo "$out"; exit 1
fi
if ! grep -q "error: cargo fetch failed" <<< "$out"; then
  echo "FAILED: offline, the script did not say what failed:"; echo "$out"; exit 1
fi
echo "ok: offline with an empty CARGO_HOME, it fails and says: $(grep 'error:' <<< "$out" | head -1)"

copy "$work/online"
if ! out=$(CARGO_HOME="$work/online-home" "$work/online/scripts/patch-qdrant-edge.sh" 2>&1); then
  echo "FAILED: with an empty CARGO_HOME:"; echo "$out"; exit 1
fi
config="$work/online/.cargo/config.toml"
grep -q "$work/online/.patched/qdrant-edge-0.9.0" "$config" || { echo "FAILED: $config does not point at the patched copy"; exit 1; }
[[ -f "$work/online/.patched/qdrant-edge-0.9.0/.mnemo-patched" ]] || { echo "FAILED: no patched copy"; exit 1; }
echo "ok: with an empty CARGO_HOME, it fetched and patched: $(tail -1 <<< "$out")"
echo "2 passed, 0 failed"
