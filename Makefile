# The two commands of the README, and the steps they are made of.
SHELL := /bin/bash
CARGO ?= cargo
MNEMO := target/release/mnemo
BENCH := target/release/mnemo-bench

.PHONY: demo test api-clients model patched-deps build fmt clippy bench-embed bench-tasks bench-crash bench-store bench-store-qdrant bench-index bench-http bench-import bench-durability bench-memory

# Fetch and verify the model, build, index the example plans into a data directory under
# target/ (Qdrant's engine, in-process), then ask it a question by meaning and one by number.
# The folder is made afresh: one left by an older build may hold another index layout.
DEMO_DATA := target/demo-data
demo: model build
	rm -rf $(DEMO_DATA)
	$(MNEMO) index examples/plans --data-dir $(DEMO_DATA)
	$(MNEMO) search "ne pas recalculer les embeddings des questions déjà posées" --data-dir $(DEMO_DATA) --limit 3
	$(MNEMO) search "2.1.2" --mode hybrid --data-dir $(DEMO_DATA) --limit 1

# Everything CI checks (then the setup script on a machine where Cargo never ran). --nocapture lets the parity test's figures (min and median cosine)
# reach the log; the other tests print nothing of their own. Then the REST API against the
# official openai client, an OpenAPI validator and schemathesis (pinned, in a cached venv).
# MNEMO_REQUIRE_QDRANT=1 and MNEMO_REQUIRE_POSTGRES=1: the Qdrant and PostgreSQL tests fail,
# rather than skip, without the shared server or without PostgreSQL installed.
#
# Lints and tests share one build: clippy-driver (rustc with clippy's lints, what `cargo
# clippy` itself runs) compiles the workspace's own crates, every target, with warnings denied
# as `make clippy` does, and produces the test binaries in the same pass. A separate `cargo
# clippy` would check the ~400 dependencies a second time: 4 minutes of CI's 30. CLIPPY_ARGS
# is how cargo-clippy hands its `-- -D warnings` to the driver.
CLIPPY_DRIVER = $(shell command -v clippy-driver)
# The Python clients install (downloads, mostly) while Rust builds.
test: model patched-deps fmt
	@test -n "$(CLIPPY_DRIVER)" || { echo "clippy-driver not found: rustup component add clippy" >&2; exit 1; }
	tests/python/run.sh --install-only & installing=$$!; \
	RUSTC_WORKSPACE_WRAPPER=$(CLIPPY_DRIVER) CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__ \
	  MNEMO_REQUIRE_QDRANT=1 MNEMO_REQUIRE_POSTGRES=1 $(CARGO) test --release --workspace -- --nocapture; tested=$$?; \
	wait $$installing; installed=$$?; \
	if [ $$tested -ne 0 ]; then exit $$tested; fi; \
	if [ $$installed -ne 0 ]; then echo "installing the Python test clients failed" >&2; exit $$installed; fi
	MNEMO_REQUIRE_QDRANT=1 MNEMO_BIN=$(MNEMO) tests/python/run.sh
	tests/scripts/patch-qdrant-edge.sh
	scripts/check-deploy.sh $(MNEMO)

api-clients:
	tests/python/run.sh

# Both models mnemo runs (all-MiniLM-L6-v2, the default; all-mpnet-base-v2), verified.
model:
	scripts/fetch-model.sh all-MiniLM-L6-v2
	scripts/fetch-model.sh all-mpnet-base-v2

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

# The embedded store: 100k clustered 384-d vectors; search latency and recall against exact search.
bench-store: build
	$(BENCH) store

# The same workload on the embedded store, a Qdrant node and a 3-node cluster, side by side.
bench-store-qdrant: build
	bench/store-qdrant.sh

# Indexing the shared corpus: parse / embed / store split beside the model alone, then warm.
bench-index: model build
	$(BENCH) index ../shared/corpus

# The REST API against the library in the same run: vector search at 100k points, text search.
bench-http: model build
	bench/http.sh

# A legacy task_vectors.json of 50 MB and 500 MB through mnemo import: MB/s, points/s, peak memory.
bench-import: build
	$(BENCH) import

# What durability = "fsync" costs: single-point and batched upserts under each durability.
bench-durability: build
	$(BENCH) durability

# Agents' memories against mem0 (offline, same model and texts): adds/s, search p50/p95, overlap.
bench-memory: model build
	bench/memory-vs-mem0.sh
