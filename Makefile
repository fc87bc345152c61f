# simlab developer commands. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test test-fast lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/simlab demo

# Test processes: three by default. CI's machine has two cores, but much of the suite
# waits on engine runs, servers and batch jobs: three took 18.5 min where two took
# 26.7 min (docs/architecture.md, Tests). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 3

test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --durations=25; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest ran no tests: failing" >&2; fi; \
	exit $$status

test-fast: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope -m "not slow"

lint: setup
	$(VENV)/bin/ruff check simlab tests benchmarks
	$(VENV)/bin/ruff format --check simlab tests benchmarks
	$(VENV)/bin/lint-imports

format: setup
	$(VENV)/bin/ruff format simlab tests benchmarks
	$(VENV)/bin/ruff check --fix simlab tests benchmarks

bench: setup
	$(PY) -m pip install --quiet -e '.[test,bench]' || \
	for peer in numba yt pynbody Pylians; do \
		$(PY) -m pip install --quiet "$$peer" || echo "bench: $$peer did not install" >&2; \
	done
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) build dist .pytest_cache demo-output
