# Two commands on a fresh machine: `make app` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PORT ?= 8501
# The app listens on this machine only; ADDRESS=0.0.0.0 serves every network interface (a shared server).
ADDRESS ?= 127.0.0.1
# OpenMP threads sleep rather than spin when waiting: much steadier on shared machines
export OMP_WAIT_POLICY := PASSIVE
# glibc otherwise hands memory back after every batch and CPU timings swing 10x (measured: ../shared/ENVIRONMENT.md).
# For timings and training only: the served app must give memory back after each upload, so `make app` has none.
STEADY := MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000

.PHONY: app test test-fast bench demo chromium clean

# Runtime only (what the app and the CLI need); the tests' and benchmarks' packages come with $(DEV_STAMP).
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
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

bench: $(DEV_STAMP)
	@for f in benchmarks/bench_*.py; do $(STEADY) $(PY) $$f || exit 1; done

# Rebuild the shipped demo checkpoints (checkpoints/) from the CC0 demo collection.
demo: $(STAMP)
	$(STEADY) $(VENV)/bin/artlab experiment configs/demo.toml

clean:
	rm -rf $(VENV) .pytest_cache
