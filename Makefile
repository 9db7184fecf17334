# The two commands of the README, and the steps they are made of.
SHELL := /bin/bash
CARGO ?= cargo
MNEMO := target/release/mnemo

.PHONY: demo test model patched-deps build fmt clippy bench-embed bench-tasks bench-crash

# Fetch and verify the model, build, and show each demo line's nearest neighbours.
demo: model build
	$(MNEMO) nearest --input examples/demo-tasks.txt --top 2

# Everything CI checks. --nocapture lets the parity test's figures (min and median cosine)
# reach the log; the other tests print nothing of their own.
test: model patched-deps fmt clippy
	$(CARGO) test --release --workspace -- --nocapture

model:
	scripts/fetch-model.sh

# qdrant-edge 0.9 from a patched copy while the toolchain is older than Rust 1.96 (a no-op after).
patched-deps:
	scripts/patch-qdrant-edge.sh

build: patched-deps
	$(CARGO) build --release

fmt:
	$(CARGO) fmt --all --check

clippy: patched-deps
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

# mnemo against sentence-transformers (torch and ONNX) on the same texts, one table.
bench-embed: model build
	bench/embed-vs-sentence-transformers.sh

bench-tasks: build
	bench/tasks-vs-regex.sh

# 200 kill -9 cycles against the embedded store (the test suite runs 20).
bench-crash:
	bench/crash.sh 200
