#!/usr/bin/env bash
# kill -9 durability, long form: the store's crash test with 200 cycles (the test suite runs 20).
# Each cycle starts a writer process, SIGKILLs it at a pseudo-random moment, reopens the data
# directory and checks every acknowledged point. Usage: bench/crash.sh [CYCLES]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/patch-qdrant-edge.sh
MNEMO_CRASH_CYCLES="${1:-200}" cargo test --release -p mnemo-store --test crash -- --nocapture crash_cycles
