# alphaforge: `make run` serves the API on the embedded default; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
# test processes (pytest-xdist); every test uses databases, folders and ports of its own
PYTEST_WORKERS ?= 2
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: setup run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[all,dev]"
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

run: setup
	$(BIN)/alphaforge serve

test: setup
	$(BIN)/pytest -n $(PYTEST_WORKERS)

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) data .pytest_cache .hypothesis
