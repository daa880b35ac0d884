# proglog's entry point: CI (.ci/run) calls these same targets.
.PHONY: test test-python lint verify bench compare fuzz-smoke doc cluster image compose-up compose-down test-deploy

CARGO ?= cargo

# Every test in the workspace: unit, integration (nextest) and doc tests.
# A fresh machine gets cargo-nextest installed first (a few minutes, once).
test:
	@$(CARGO) nextest --version >/dev/null 2>&1 || { echo "== installing cargo-nextest"; $(CARGO) install cargo-nextest --locked; }
	$(CARGO) nextest run --workspace --no-tests=warn
	$(CARGO) test --workspace --doc

# The Python (grpcio) client suite against a real `proglog agent`: the
# contract exercised from another language. See tests/python/run.sh.
test-python:
	bash tests/python/run.sh

# Formatting, lints with warnings denied, and rustdoc with warnings denied.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

# What CI checks.
verify: lint test test-python

# Three replicated nodes on 127.0.0.1 (RPC 8401-8403) in the foreground;
# Ctrl-C stops them. See docs/cluster.md.
cluster:
	bash scripts/cluster.sh

# Criterion benchmarks of log-core, with the disk's own limits measured in the
# same run; see log-core/benches/log.rs for what each one means.
bench:
	$(CARGO) bench -p log-core --bench log

# Extra flags for proglog-compare, e.g. a quick run:
#   make compare COMPARE_ARGS="--repetitions 1 --workload-seconds 1"
COMPARE_ARGS ?=

# proglog against NATS JetStream and Redis streams on this machine, with the
# machine's ceilings measured in the same run (installs the peers with apt
# if missing). Writes bench/results/latest.md; see bench/README.md.
compare:
	CARGO=$(CARGO) bash bench/compare.sh $(COMPARE_ARGS)

# Each fuzz target's run time in `fuzz-smoke`, in seconds.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := frame_decoder open_dir gossip_envelope raft_state_file producer_checkpoint raft_message

# Runs each cargo-fuzz target for FUZZ_SECONDS on stable (no sanitizer),
# starting from its checked-in seeds. The seeds are copied into a scratch
# corpus (fuzz/corpus/<target>, gitignored) so libFuzzer never rewrites them;
# crashes land in fuzz/artifacts/<target>/. Every target runs; the target
# fails if any of them found a crash.
fuzz-smoke:
	@command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	@failed=""; for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$target && cp fuzz/seeds/$$target/* fuzz/corpus/$$target/ || exit 1; \
		echo "== fuzzing $$target for $(FUZZ_SECONDS)s"; \
		(cd fuzz && cargo fuzz run -s none $$target corpus/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1) || failed="$$failed $$target"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz-smoke: crashes in:$$failed (see fuzz/artifacts/)"; exit 1; fi

# The workspace version, which tags the image.
VERSION := $(shell awk -F'"' '/^\[workspace.package\]/ { p = 1; next } /^\[/ { p = 0 } p && /^version/ { print $$2; exit }' Cargo.toml)
IMAGE ?= proglog:$(VERSION)
# An explicit target keeps +crt-static off build scripts and proc macros.
IMAGE_TARGET := x86_64-unknown-linux-gnu
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

# The image from a static release binary, FROM scratch, built by the local
# Docker engine with nothing pulled (deploy/Dockerfile, docs/deploy.md).
image:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --target $(IMAGE_TARGET) -p agent --bin proglog
	bash deploy/stage-rootfs.sh $(TARGET_DIR)/$(IMAGE_TARGET)/release/proglog $(TARGET_DIR)/image-context
	docker build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) -t $(IMAGE) $(TARGET_DIR)/image-context
	@docker image ls $(IMAGE)

# Three nodes of $(IMAGE) with docker compose (TLS=1: mutual TLS and a
# gossip key); RPC on 127.0.0.1:8411-8413. See deploy/compose.sh.
compose-up:
	PROGLOG_IMAGE=$(IMAGE) bash deploy/compose.sh up

# Stops them and removes their containers, network and volumes (data too).
compose-down:
	PROGLOG_IMAGE=$(IMAGE) bash deploy/compose.sh down

# The Helm chart rendered, linted and validated offline, and the three-node
# container tests (an image of the debug binary unless PROGLOG_IMAGE is
# set; skipped without a Docker engine). See tests/deploy/run.sh.
test-deploy:
	bash tests/deploy/run.sh
