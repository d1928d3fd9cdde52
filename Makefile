# Trainboard: `make run` starts the app, `make test` runs the whole suite, `make soak` the long soak,
# `make bench` the benchmarks.
# Each creates .venv on first use and reinstalls only when a requirements file changes.
# `make cluster` starts a local Ray cluster (a head and two worker nodes) for TRAINBOARD_RAY_ADDRESS.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test soak lint bench cluster clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-app: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed-app
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(VENV)/.installed-ray: requirements-ray.txt $(VENV)/.installed-app
	$(PY) -m pip install --quiet -r requirements-ray.txt
	touch $@

run: $(VENV)/.installed-app
	$(PY) -m streamlit run app.py --server.port $(PORT)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest

# The soak: 5 browsers and 30 simulated sessions at once (a few minutes; .ci/run runs it).
soak: $(VENV)/.installed-dev
	$(PY) -m pytest -m soak

bench: $(VENV)/.installed-dev
	$(PY) -m bench

# Prints the address to export; `TRAINBOARD_RAY_ADDRESS=<it> make run` then trains on it. Ctrl-C stops it.
cluster: $(VENV)/.installed-ray
	$(PY) -m core.jobs.ray_local --workers 2

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
