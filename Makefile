# Trainboard: `make run` starts the app, `make test` runs the whole suite, `make soak` the long soak,
# `make bench` the benchmarks.
# Each creates .venv on first use and reinstalls only when a requirements file changes.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test soak lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-app: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed-app
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed-app
	$(PY) -m streamlit run app.py --server.port $(PORT)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest

# The long soak: 30 simulated sessions and 5 browsers at once (a few minutes; .ci/run runs it).
soak: $(VENV)/.installed-dev
	$(PY) -m pytest -m soak

bench: $(VENV)/.installed-dev
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
