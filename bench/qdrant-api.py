"""One qdrant-client workload against `mnemo serve --qdrant-api` and against the Qdrant server
(the shared 1.18.1 binary), in one run on this machine: upsert of N points in batches, then
queries with and without a filter; points/s, query p50/p99 and the server's resident memory
(now and at its peak), side by side.

    python bench/qdrant-api.py MNEMO_BINARY SHARED_DIR [--points 100000] [--queries 1000]

Vectors are random unit 384-d vectors (seeded): the store is measured, not the model.
Both servers are started fresh, on loopback, and stopped at the end. Each side waits until its
collection is indexed (green, `indexed_vectors_count` at the points or steady) before the
queries, at most 10 minutes.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))

from qdrant_client import QdrantClient, models  # noqa: E402

import test_qdrant_api as servers  # noqa: E402

DIM = 384
BATCH = 1000


def unit(rng):
    vector = [rng.gauss(0.0, 1.0) for _ in range(DIM)]
    norm = sum(x * x for x in vector) ** 0.5
    return [x / norm for x in vector]


def memory_kib(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def workload(url, pid, points, queries, seed):
    client = QdrantClient(url=url, timeout=600)
    rng = random.Random(seed)
    name = "bench"
    client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
    client.create_payload_index(name, "status", models.PayloadSchemaType.KEYWORD)
    statuses = ["open", "done", "blocked", "in_progress"]
    started = time.perf_counter()
    for first in range(0, points, BATCH):
        count = min(BATCH, points - first)
        client.upsert(name, wait=True, points=models.Batch(
            ids=list(range(first, first + count)),
            vectors=[unit(rng) for _ in range(count)],
            payloads=[{"status": statuses[i % 4], "priority": i % 5} for i in range(first, first + count)],
        ))
    upsert_seconds = time.perf_counter() - started
    # Indexed: green, and either (nearly) every vector in the HNSW index or the count steady
    # for 3 s (segments under the indexing threshold are searched by full scan).
    deadline, last, steady = time.monotonic() + 600, None, 0
    while time.monotonic() < deadline:
        info = client.get_collection(name)
        indexed = info.indexed_vectors_count or 0
        green = info.status == models.CollectionStatus.GREEN
        steady = steady + 1 if green and indexed == last else 0
        if green and (indexed >= points * 0.99 or steady >= 3):
            break
        last = indexed
        time.sleep(1)
    indexed_after = time.perf_counter() - started
    open_only = models.Filter(must=[models.FieldCondition(key="status", match=models.MatchValue(value="open"))])
    query_vectors = [unit(rng) for _ in range(queries)]
    timings = {"plain": [], "filtered": []}
    for index, vector in enumerate(query_vectors):
        kind = "filtered" if index % 2 else "plain"
        begun = time.perf_counter()
        client.query_points(name, query=vector, limit=10,
                            query_filter=open_only if kind == "filtered" else None)
        timings[kind].append(time.perf_counter() - begun)
    rss, peak = memory_kib(pid)
    return {
        "points_per_s": points / upsert_seconds,
        "indexed_after_s": indexed_after,
        "plain": timings["plain"],
        "filtered": timings["filtered"],
        "rss_mib": rss / 1024,
        "peak_mib": peak / 1024,
    }


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("shared")
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for side in ["qdrant", "mnemo"]:
            if side == "qdrant":
                process, url = servers.start_qdrant(args.shared, work)
            else:
                process, _, url = servers.start_mnemo(args.binary, work, "mnemo")
            try:
                print(f"{side}: {args.points} points, {args.queries} queries ...", flush=True)
                results[side] = workload(url, process.pid, args.points, args.queries, seed=20261208)
            finally:
                process.kill()
                process.wait()
    print()
    print(f"{'':28}{'Qdrant 1.18.1':>16}{'mnemo':>16}{'mnemo / Qdrant':>16}")
    rows = [
        ("upsert, points/s", lambda r: r["points_per_s"], "{:.0f}"),
        ("indexed after, s", lambda r: r["indexed_after_s"], "{:.1f}"),
        ("query p50, ms", lambda r: statistics.median(r["plain"]) * 1000, "{:.2f}"),
        ("query p99, ms", lambda r: percentile(r["plain"], 0.99) * 1000, "{:.2f}"),
        ("filtered query p50, ms", lambda r: statistics.median(r["filtered"]) * 1000, "{:.2f}"),
        ("filtered query p99, ms", lambda r: percentile(r["filtered"], 0.99) * 1000, "{:.2f}"),
        ("server RSS after, MiB", lambda r: r["rss_mib"], "{:.0f}"),
        ("server peak RSS, MiB", lambda r: r["peak_mib"], "{:.0f}"),
    ]
    for label, get, form in rows:
        theirs, ours = get(results["qdrant"]), get(results["mnemo"])
        print(f"{label:28}{form.format(theirs):>16}{form.format(ours):>16}{ours / theirs:>15.2f}x")


if __name__ == "__main__":
    main()
