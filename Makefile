# Two entry points: `make laws` (the laws at this machine's default tier) and
# `make test` (the harness's own tests). Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
ARGS   ?=

.PHONY: laws test venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

laws: venv
	$(PY) -m pytest laws/ $(ARGS)

test: venv
	$(PY) -m pytest tests/ -q $(ARGS)

clean:
	rm -rf $(VENV) .lrlaws
