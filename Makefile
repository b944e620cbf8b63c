# alphaforge: `make run` serves the API on the embedded default; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
# test processes (pytest-xdist); every test uses databases, folders and ports of its own
PYTEST_WORKERS ?= 2
BIN    := $(VENV)/bin
# exact versions of every dependency (refresh with `make lock`)
LOCK   := requirements.lock
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)

.PHONY: setup run test bench lock clean

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

run: setup
	$(BIN)/alphaforge serve

test: setup
	$(BIN)/pytest -n $(PYTEST_WORKERS)

bench: setup
	$(BIN)/python -m bench

# Resolve pyproject.toml's ranges afresh in a throwaway venv and pin what was installed.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e ".[all,dev]"
	{ sed -n '/^#/p' $(LOCK); .lock-venv/bin/pip freeze --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK) && rm -rf .lock-venv

clean:
	rm -rf $(VENV) data .pytest_cache .hypothesis
