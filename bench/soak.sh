#!/usr/bin/env bash
# A real mnemo serve on loopback under mixed clients for a bounded time (10 minutes by
# default, at most 2,000,000 requests; it stops by itself): text and vector searches, upserts,
# OpenAI embeddings, index jobs over ../shared/corpus, and a client sending every hostile
# input the service was hardened against. Fails unless the server's RSS at the end is within
# 10 % of its level after the first minute, no answer was a 5xx other than 503 with
# Retry-After, and every acknowledged upsert reads back.
#   bench/soak.sh [--seconds N] [--max-requests N] [--corpus DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory build >&2
exec target/release/mnemo-bench soak --mnemo target/release/mnemo "$@"
