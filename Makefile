# The two set-up commands of the README:  `make demo`  and  `make test` (everything, as CI runs
# it). `make test-fast` leaves out the tests marked slow (fresh venvs and pip installs, wheel
# builds, fresh interpreters, training runs, busy loops on every core): the inner loop.
# Each creates .venv on first use (torch first, $(TORCH) from pip's index, unless the venv has
# one), installs the project with its test and docs extras, then runs. A second run reuses it.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH  ?= torch==2.13.0
STAMP   = $(VENV)/.simbench-installed

.PHONY: demo test test-fast bench lint docs install clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,docs]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/simbench demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: $(STAMP)
	$(BIN)/python -m pytest -q benchmarks --benchmark-enable --benchmark-only

# ruff, then the import contracts of pyproject.toml [tool.importlinter] (the layers)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(MAKE) docs

# The documentation site (mkdocs.yml, docs/) into site/; strict: a broken link, reference or
# docstring fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs build --strict --quiet

clean-venv:
	rm -rf $(VENV)
