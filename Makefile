# Two commands for a fresh machine: `make demo` and `make test`; each sets up .venv itself.
# editable_mode=compat: a plain path entry, so mypy sees the installed package like any user module would.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TARGETS := kubernetes cilium calico

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

## Compile every module in examples/ for every target into ./out/<example>/<target>/ and summarise.
demo: $(STAMP)
	@rm -rf out
	@for f in examples/*.py; do \
	  name=$$(basename $$f .py); \
	  for t in $(TARGETS); do \
	    printf '== %s [%s]\n' "$$name" "$$t"; \
	    $(BIN)/netpol-dsl build $$f --target $$t -o out/$$name 2>&1 | sed 's/^/   /'; \
	  done; \
	done

## mypy --strict over the package and the examples, then the whole pytest suite.
test: $(STAMP)
	$(BIN)/mypy --strict netpol_dsl examples
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check netpol_dsl tests examples bench

## Benchmarks (outside the test suite).
bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) out .mypy_cache .pytest_cache
