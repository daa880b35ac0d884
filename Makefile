# proglog's entry point: CI (.ci/run) calls these same targets.
.PHONY: test test-python lint verify bench compare fuzz-smoke doc cluster

CARGO ?= cargo

# Every test in the workspace: unit, integration (nextest) and doc tests.
test:
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
FUZZ_TARGETS := frame_decoder open_dir gossip_envelope

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
