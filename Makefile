# mlcycle — every target installs what it needs first, so each works on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
UV_VERSION := 0.13.9
STAMP  := $(VENV)/.synced
ALT    := .venv-bench
ALT_STAMP := $(ALT)/.synced
PYTEST_ARGS ?=
# Tests run on every core (CI has 2), a whole test module per worker at a time, so
# a module's shared fixture (a trained project, a running server, the Ray
# cluster) is built once. (Not --dist loadgroup: with pytest 9.2 xdist 3.8's
# groups are silently ignored and tests spread one by one.)
TEST_WORKERS ?= auto

.PHONY: install browser demo test lint bench mutate clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# Re-sync only when the lock file or the project metadata changed. Bytecode is
# compiled at install: where PYTHONDONTWRITEBYTECODE is set, every start-up
# would otherwise re-compile pandas and friends from source (seconds).
$(STAMP): $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --inexact --compile-bytecode --python $(BIN)/python --extra dev --extra examples --extra postgres
	@touch $(STAMP)

# mlcycle's own modules are compiled too (the editable install leaves them to
# each start, which recompiles them every time where PYTHONDONTWRITEBYTECODE is set).
install: $(STAMP)
	@$(BIN)/python -m compileall -q src/mlcycle >/dev/null

demo: install
	$(BIN)/python examples/demo.py

# The report's browser test needs a real Chromium (Debian's package). Installed
# when missing and we may (root with apt-get, as in CI); elsewhere the test says
# it skipped, except under CI=true, where a missing browser fails it.
browser:
	@if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium (Debian) for the browser tests"; \
			apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "note: no chromium; the browser test will be skipped (install Debian's chromium)"; \
		fi; \
	fi

# pytest exits 5 when no test was collected; that is not a failure of the code.
test: install browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

lint: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

# The alternatives (MLflow, Evidently, ydata-profiling) live in their own venv.
$(ALT_STAMP): $(UV) benchmarks/alternatives/uv.lock benchmarks/alternatives/pyproject.toml
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/$(ALT) $(UV) sync --frozen --compile-bytecode \
		--project benchmarks/alternatives --python $(PYTHON)
	@touch $(ALT_STAMP)

bench: install $(ALT_STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH)

# Mutation testing of the statistical and contract core ([tool.mutmut] in
# pyproject.toml says which files and which unit tests). Not in CI: it takes
# minutes. One worker by default (shared machines); MUTATE_JOBS=n for more,
# MUTANTS='mlcycle.registry.gate.*' for a subset, MUTATE_TIMEOUT caps the run
# (seconds). Results are cached in mutants/, so a re-run checks only what
# changed. The score counts a mutant killed when a test failed or timed out.
MUTATE_JOBS ?= 1
MUTATE_TIMEOUT ?= 3600
MUTANTS ?=
mutate: install
	-timeout $(MUTATE_TIMEOUT) $(BIN)/mutmut run --max-children $(MUTATE_JOBS) $(MUTANTS) >/dev/null
	@$(BIN)/mutmut results --all true | awk -F': ' '/__mutmut_/ { \
		m = $$1; sub(/^ +/, "", m); sub(/\.x(_|ǁ).*$$/, "", m); \
		n[m]++; N++; if ($$2 == "killed" || $$2 == "timeout") { k[m]++; K++ } \
		if ($$2 == "not checked") { u[m]++; U++ } } \
		END { printf "%-34s %8s %6s %7s %9s\n", "module", "killed", "total", "score", "unchecked"; \
		for (m in n) printf "%-34s %8d %6d %6.1f%% %9d\n", m, k[m], n[m], 100 * k[m] / n[m], u[m]; \
		if (N) printf "%-34s %8d %6d %6.1f%% %9d\n", "overall", K, N, 100 * K / N, U }'
	@echo "survivors: $(BIN)/mutmut results; one diff: $(BIN)/mutmut show <name>"

clean:
	rm -rf $(VENV) $(ALT) .demo .pytest_cache .mypy_cache .ruff_cache
