# Thin wrappers around dev.py, which needs nothing but Python:
#   make laws ARGS="-k linearity"   ==  python3 dev.py laws -k linearity
#   make test                       ==  python3 dev.py test
PYTHON ?= python3
ARGS   ?=

.PHONY: laws test clean

laws:
	$(PYTHON) dev.py laws $(ARGS)

test:
	$(PYTHON) dev.py test -q $(ARGS)

clean:
	rm -rf .venv .lrlaws
