# Two commands do all the set-up on a fresh machine that has only Python:
#   make serve   create .venv, install from requirements.lock, build the model repository if missing, serve on 127.0.0.1:8000 (poll mode)
#   make test    create .venv, install from requirements.lock, run the whole suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
REPO   ?= model_repository
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: serve test lint typecheck bench clean lock

# every package pinned to an exact version and hash (requirements.lock, made by `make lock`);
# pip refuses `-e .` under --require-hashes, so the lock goes first and the project without deps
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --require-hashes --no-deps -r requirements.lock
	$(PIP) install -q --no-deps --no-build-isolation -e . || $(PIP) install -q --no-deps -e .
	touch $@

# re-pin after a change to pyproject.toml's dependencies (pip-tools, in a throwaway venv)
lock:
	$(PYTHON) -m venv /tmp/shopserve-piptools && /tmp/shopserve-piptools/bin/pip install -q pip-tools
	/tmp/shopserve-piptools/bin/pip-compile --quiet --extra dev --extra export --extra loadtest \
		--generate-hashes --strip-extras --allow-unsafe -o requirements.lock pyproject.toml

# the full demo repository: trained on the real data in data/ (resumable: finished models are
# kept; models that miss a quality gate are still served, their cards say which gate failed), plus the small onnx.helper models the README's first examples use
$(REPO)/.complete: | $(VENV)/.installed
	$(VENV)/bin/shopserve export all --allow-regression --out $(REPO)
	$(VENV)/bin/shopserve export demo --out $(REPO)
	touch $@

serve: $(VENV)/.installed $(REPO)/.complete
	SHOPSERVE_MODEL_CONTROL_MODE=$${SHOPSERVE_MODEL_CONTROL_MODE:-poll} $(VENV)/bin/shopserve serve --model-repository $(REPO) --host $(HOST) --port $(PORT)

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check server kernels export bench loadtests tests
	$(VENV)/bin/ruff format --check server kernels export bench loadtests tests

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(PIP) install -q -e '.[bench]'
	$(VENV)/bin/shopserve bench server

clean:
	rm -rf $(VENV) $(REPO) .pytest_cache .ruff_cache .mypy_cache
