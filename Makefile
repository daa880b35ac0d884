.PHONY: fuzz-smoke

# Each fuzz target's run time in `fuzz-smoke`, in seconds.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := frame_decoder open_dir

# Runs each cargo-fuzz target for FUZZ_SECONDS on stable (no sanitizer),
# starting from its checked-in seeds. The seeds are copied into a scratch
# corpus (fuzz/corpus/<target>, gitignored) so libFuzzer never rewrites them;
# crashes land in fuzz/artifacts/<target>/.
fuzz-smoke:
	@command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	@set -e; for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$target; \
		cp fuzz/seeds/$$target/* fuzz/corpus/$$target/; \
		echo "== fuzzing $$target for $(FUZZ_SECONDS)s"; \
		(cd fuzz && cargo fuzz run -s none $$target corpus/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1); \
	done
