#!/usr/bin/env bash
# The REST API under load on loopback beside the library in the same process and run:
# vector search at 100k points and text search, QPS and p50/p99 for 1, 8 and 64 clients.
# Bounded: about 4 minutes on 2 cores (index build ~1 min, 12 measurements of 5 s).
#   bench/http.sh [--points N] [--clients 1,8,64] [--seconds S] [--ef E] [--texts FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory build >&2
exec target/release/mnemo-bench http "$@"
