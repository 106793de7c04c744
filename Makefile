# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv if it is missing, install torch==2.13.0 (CPU build) first, then the
# project with its extras (editable), then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.privcrypt-installed
TORCH  := torch==2.13.0
JOBS   ?= 2

.PHONY: demo test venv clean bench-quick

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[all]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	PRIVCRYPT_NO_PROGRESS=1 $(PY) -m pytest -q -n $(JOBS) -p no:cacheprovider

demo: $(STAMP)
	$(VENV)/bin/privcrypt demo

bench-quick: $(STAMP)
	$(VENV)/bin/privcrypt demo --json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
