# The two commands of the README, and the steps they are made of.
SHELL := /bin/bash
CARGO ?= cargo
MNEMO := target/release/mnemo

.PHONY: demo test model build fmt clippy bench-embed bench-tasks

# Fetch and verify the model, build, and show each demo line's nearest neighbours.
demo: model build
	$(MNEMO) nearest --input examples/demo-tasks.txt --top 2

# Everything CI checks. --nocapture lets the parity test's figures (min and median cosine)
# reach the log; the other tests print nothing of their own.
test: model fmt clippy
	$(CARGO) test --release --workspace -- --nocapture

model:
	scripts/fetch-model.sh

build:
	$(CARGO) build --release

fmt:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

# mnemo against sentence-transformers (torch and ONNX) on the same texts, one table.
bench-embed: model build
	bench/embed-vs-sentence-transformers.sh

bench-tasks: build
	bench/tasks-vs-regex.sh
