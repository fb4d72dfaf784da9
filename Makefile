# sysgram: the README's two commands are `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
ADFA ?= $(abspath ../shared/datasets/adfa-ld-dev)

.PHONY: install test test-fast lint demo bench eval clean

install:
	bash scripts/install.sh

test: install
	$(VENV)/bin/ruff check sysgram tests benchmarks
	SYSGRAM_ADFA_DIR=$(ADFA) $(PY) -m pytest -q -rs

test-fast: install
	$(PY) -m pytest -q -m "not kernel and not slow"

lint: install
	$(VENV)/bin/ruff check sysgram tests benchmarks

demo: install
	$(PY) -m sysgram.demo

bench: install
	$(PY) benchmarks/run.py

eval: install
	$(VENV)/bin/sysgram eval $(ADFA) --format adfa-ld

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
