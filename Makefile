# Two commands on a fresh machine: `make app` and `make test`. Both create .venv when it is missing, with the newest of
# python3.13, python3.12 and python3.11 found on the PATH (the pinned packages install and serve on all three);
# PYTHON=/path/to/python chooses another.
ifndef PYTHON
PYTHON := $(firstword $(foreach p,python3.13 python3.12 python3.11,$(shell $(p) -c "" >/dev/null 2>&1 && echo $(p))))
endif
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PORT ?= 8501
# The app listens on this machine only; ADDRESS=0.0.0.0 serves every network interface (a shared server).
ADDRESS ?= 127.0.0.1
# OpenMP threads sleep rather than spin when waiting: much steadier on shared machines
export OMP_WAIT_POLICY := PASSIVE
# glibc otherwise hands memory back after every batch and CPU timings swing 10x (measured: docs/performance.md).
# For timings and training only: the served app must give memory back after each upload, so `make app` has none.
STEADY := MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000

.PHONY: app test test-fast bench demo demo-select chromium guide-pictures clean

# Runtime only (what the app and the CLI need); the tests' and benchmarks' packages come with $(DEV_STAMP).
$(STAMP): requirements.txt pyproject.toml
	@if test -x $(PY); then echo "using $(VENV) ($$($(PY) --version))"; \
	elif test -z "$(PYTHON)"; then echo "make: no python3.13, python3.12 or python3.11 on the PATH (or set PYTHON=...)"; exit 1; \
	else echo "creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version))"; $(PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(DEV_STAMP)

app: $(STAMP)
	@test -f data/demo/manifest.csv || TQDM_DISABLE=1 $(VENV)/bin/artlab data demo --out data/demo >/dev/null  # full-size originals for the CAMs
	$(PY) -m artlab.app.serve --server.address $(ADDRESS) --server.port $(PORT) --server.headless true \
		--server.fileWatcherType none --browser.gatherUsageStats false

# The browser test drives Debian's Chromium; install it when it is missing (needs root or sudo).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: $(DEV_STAMP) chromium
	$(STEADY) $(PY) -m pytest -q -ra

# No training, no server, no browser (tests marked train, slow or browser are left out).
test-fast: $(DEV_STAMP)
	$(STEADY) $(PY) -m pytest -q -m "not slow and not browser and not train"

# Every benchmark but the two long ones (under 15 min on a quiet 2-core machine); `make bench-scale` runs those: the
# GenRe study end to end at STUDY_SCALE of its 8,000 paintings, projected to all of them (1: the study, ~45 min), and
# `artlab embed` on 20,000 paintings (EMBED_PAINTINGS), whose memory must not grow with the collection.
SCALE_BENCHES := benchmarks/bench_study_scale.py benchmarks/bench_embed_scale.py
STUDY_SCALE ?= 0.05
EMBED_PAINTINGS ?= 20000
.PHONY: bench-scale
bench: $(DEV_STAMP)
	@for f in $(filter-out $(SCALE_BENCHES),$(wildcard benchmarks/bench_*.py)); do \
		$(STEADY) $(PY) $$f || exit 1; done

bench-scale: $(DEV_STAMP)
	$(STEADY) $(PY) benchmarks/bench_study_scale.py --scale $(STUDY_SCALE)
	$(STEADY) $(PY) benchmarks/bench_embed_scale.py --paintings $(EMBED_PAINTINGS)

# Rebuild the shipped demo checkpoints (checkpoints/) from the CC0 demo collection.
demo: $(STAMP)
	$(STEADY) $(VENV)/bin/artlab experiment configs/demo.toml

# Choose the demo recipes: artist-grouped cross-validation (5 folds x 3 repeats) over the whole demo collection, on
# frozen features cached in runs/demo-cv/features; prints and writes runs/demo-cv/cv-results.md (docs/demo-cv.md is a
# copy). About 15 min on a busy 2-core CPU; an interrupted run resumes. Its winners are what configs/demo.toml ships.
demo-select: $(STAMP)
	@test -f data/demo/manifest.csv || TQDM_DISABLE=1 $(VENV)/bin/artlab data demo --out data/demo >/dev/null
	$(PY) -m artlab.cli.select --collection data/demo --out runs/demo-cv

# Retake the pictures of docs/guide.md: the browser test serves the shipped demo runs, clips each part of a page the
# guide explains into tests/artifacts/guide/, and they are copied over docs/guide/.
guide-pictures: $(DEV_STAMP) chromium
	$(STEADY) $(PY) -m pytest -q tests/test_guide_pictures.py
	mkdir -p docs/guide && cp tests/artifacts/guide/*.jpg docs/guide/

clean:
	rm -rf $(VENV) .pytest_cache
