#!/usr/bin/env bash
# mnemo-bench store on the embedded store, a Qdrant node and a 3-node Qdrant cluster (3 shards,
# 2 copies), side by side in one run. The servers are the shared test binary, on loopback.
# Usage: bench/store-qdrant.sh [extra `mnemo-bench store` arguments, e.g. --points 20000]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${MNEMO_SHARED_DIR:-$root/../shared}
mnemo_bench=${MNEMO_BENCH_BIN:-$root/target/release/mnemo-bench}
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

xz -dc "$shared/qdrant/qdrant.xz" > "$work/qdrant"
expected=$(awk '$2 == "qdrant" {print $1}' "$shared/qdrant/SHA256SUMS")
[ "$(sha256sum "$work/qdrant" | cut -d' ' -f1)" = "$expected" ] || { echo "qdrant: SHA-256 mismatch" >&2; exit 1; }
chmod +x "$work/qdrant"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME HTTP GRPC [P2P [BOOTSTRAP_P2P]]
start() {
  local dir="$work/$1"; mkdir -p "$dir"
  local env=(QDRANT__SERVICE__HOST=127.0.0.1 QDRANT__SERVICE__HTTP_PORT="$2" QDRANT__SERVICE__GRPC_PORT="$3"
             QDRANT__STORAGE__STORAGE_PATH="$dir/storage" QDRANT__STORAGE__SNAPSHOTS_PATH="$dir/snapshots"
             QDRANT__TELEMETRY_DISABLED=true QDRANT__LOG_LEVEL=WARN)
  local args=(--config-path "$shared/qdrant/config.yaml")
  if [ -n "${4:-}" ]; then
    env+=(QDRANT__CLUSTER__ENABLED=true QDRANT__CLUSTER__P2P__PORT="$4")
    args+=(--uri "http://127.0.0.1:$4")
    [ -n "${5:-}" ] && args+=(--bootstrap "http://127.0.0.1:$5")
  fi
  (cd "$dir" && exec env "${env[@]}" "$work/qdrant" "${args[@]}" > "$dir/log" 2>&1) &
  pids+=($!)
  for _ in $(seq 300); do curl -sf "127.0.0.1:$2/readyz" >/dev/null && return 0; sleep 0.2; done
  echo "qdrant $1 did not start:" >&2; tail "$dir/log" >&2; exit 1
}

single_http=$(free_port); single_grpc=$(free_port)
start single "$single_http" "$single_grpc"

hosts=(); first_p2p=""; first_http=""
for i in 0 1 2; do
  http=$(free_port); grpc=$(free_port); p2p=$(free_port)
  start "node$i" "$http" "$grpc" "$p2p" "$first_p2p"
  [ -z "$first_p2p" ] && { first_p2p=$p2p; first_http=$http; }
  hosts+=("127.0.0.1:$grpc")
done
for _ in $(seq 300); do
  peers=$(curl -sf "127.0.0.1:$first_http/cluster" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["result"]["peers"]))' || echo 0)
  [ "$peers" = 3 ] && break; sleep 0.2
done
cluster="qdrant://$(IFS=,; echo "${hosts[*]}")?shards=3&replication=2"

"$mnemo_bench" store --store "qdrant://127.0.0.1:$single_grpc" --store "$cluster" "$@"
