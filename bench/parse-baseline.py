#!/usr/bin/env python3
"""The old stack's plan parser, as a baseline for `mnemo-bench tasks`.

One regex per line, `- [ ] **1.2.3** text`, over every Markdown file under the paths:
what the Python scripts did before mnemo. Prints one JSON object like
`mnemo-bench tasks --json` (median of timed runs after a warm-up).
"""
import argparse
import json
import os
import re
import statistics
import time

TASK = re.compile(r"^\s*- \[( |x|X)\] \*\*([\d.]+)\*\* (.+)$")


def markdown_files(paths):
    for root in paths:
        if os.path.isfile(root):
            yield root
            continue
        for folder, _, names in sorted(os.walk(root)):
            for name in sorted(names):
                if name.lower().endswith((".md", ".markdown")):
                    yield os.path.join(folder, name)


def parse_all(files):
    tasks = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                match = TASK.match(line)
                if match:
                    tasks.append((path, number, match.group(1) != " ", match.group(2), match.group(3).strip()))
    return tasks


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    files = list(markdown_files(args.paths))
    size = sum(os.path.getsize(path) for path in files)
    tasks = parse_all(files)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        parse_all(files)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(json.dumps({
        "engine": "python-regex",
        "files": len(files),
        "bytes": size,
        "tasks": len(tasks),
        "threads": 1,
        "median_ms": median * 1e3,
        "best_ms": min(times) * 1e3,
        "mb_per_s": size / 1e6 / median,
    }))


if __name__ == "__main__":
    main()
