# Two commands do all the set-up on a fresh machine that has only Python:
#   make serve   create .venv, install from requirements.lock, build the preview models if missing, serve on
#                127.0.0.1:8000 (poll mode) while the full models build in the background and replace them
#   make test    create .venv, install from requirements.lock, run the whole suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
REPO   ?= model_repository
HOST   ?= 127.0.0.1
PORT   ?= 8000
GRPC_PORT ?= 8001

.PHONY: serve full test lint typecheck bench clean lock

# every package pinned to an exact version and hash (requirements.lock, made by `make lock`);
# pip refuses `-e .` under --require-hashes, so the lock goes first and the project without deps
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --require-hashes --no-deps -r requirements.lock
	$(PIP) install -q --no-deps --no-build-isolation -e . || $(PIP) install -q --no-deps -e .
	# compile the server's Numba kernels into their on-disk cache (kernels/__pycache__), as an
	# install compiles native code: a fresh server then loads them in a second, not ~40 s
	$(PY) -c "import kernels; print(f'kernels compiled in {kernels.warmup():.0f} s')"
	touch $@

# re-pin after a change to pyproject.toml's dependencies (pip-tools, in a throwaway venv)
lock:
	$(PYTHON) -m venv /tmp/shopserve-piptools && /tmp/shopserve-piptools/bin/pip install -q pip-tools
	/tmp/shopserve-piptools/bin/pip-compile --quiet --extra dev --extra export --extra loadtest \
		--generate-hashes --strip-extras --allow-unsafe -o requirements.lock pyproject.toml

# First answer fast, full models when ready (issue 10 item 7):
# 1. the preview tier: every family small, trained in a couple of minutes, each beating its
#    baseline (its answers say "preview model" under `warnings`), plus the onnx.helper demo models;
# 2. the full tier, built at the lowest priority (`nice -n 19`), each family published into the
#    repository when its gates pass (no --allow-regression); a full model that fails its gate is
#    not published and its preview stays, flagged. `.complete` marks the end.
# In poll mode (the default) the server starts at once and loads each family as it is published
# (a /v1 endpoint answers 404 "no pipeline ... is served" until its family lands), so the first
# endpoints answer within seconds and every one within the preview build's few minutes. In the
# other modes the server loads what is there at start, so the preview is built first.
# Build progress is printed with a "[preview build]" or "[full build]" prefix.
$(REPO)/.preview: | $(VENV)/.installed
	# --allow-regression here, for now: the text heads' preview does not beat its baseline yet
	# (issue 10 open); such a model is flagged in every /v1 answer ("failed its quality gate").
	# The full tier below never publishes a failed gate.
	$(VENV)/bin/shopserve export all --tier preview --allow-regression --out $(REPO)
	$(VENV)/bin/shopserve export demo --out $(REPO)
	touch $@

serve: $(VENV)/.installed
	@mkdir -p $(REPO); trap 'kill 0' EXIT INT TERM; \
	mode=$${SHOPSERVE_MODEL_CONTROL_MODE:-poll}; \
	if [ "$$mode" != poll ]; then $(MAKE) --no-print-directory $(REPO)/.preview || exit 1; fi; \
	( if [ ! -f $(REPO)/.preview ]; then \
		$(MAKE) --no-print-directory $(REPO)/.preview 2>&1 | sed -u 's/^/[preview build] /'; \
	  fi; \
	  if [ -f $(REPO)/.preview ] && [ ! -f $(REPO)/.complete ]; then \
		( nice -n 19 $(VENV)/bin/shopserve export all --out $(REPO) \
			&& touch $(REPO)/.complete ) 2>&1 | sed -u 's/^/[full build] /'; \
	  fi ) & \
	SHOPSERVE_REPOSITORY_POLL_SECS=$${SHOPSERVE_REPOSITORY_POLL_SECS:-2} \
	SHOPSERVE_MODEL_CONTROL_MODE=$$mode $(VENV)/bin/shopserve serve \
		--model-repository $(REPO) --host $(HOST) --port $(PORT) --grpc-port $(GRPC_PORT)

# the full tier in the foreground (what `make serve` runs in the background)
full: $(VENV)/.installed $(REPO)/.preview
	$(VENV)/bin/shopserve export all --out $(REPO) && touch $(REPO)/.complete

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check server kernels export bench loadtests tests
	$(VENV)/bin/ruff format --check server kernels export bench loadtests tests

# the V2 gRPC messages (server/grpc/shopserve_inference_pb2.py[i]) from their .proto, with
# grpcio-tools; commit the result (tests/server/grpc/test_proto.py checks it is current)
proto: $(VENV)/.installed
	$(PY) -m server.grpc.generate

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(PIP) install -q -e '.[bench]'
	$(VENV)/bin/shopserve bench server

clean:
	rm -rf $(VENV) $(REPO) .pytest_cache .ruff_cache .mypy_cache
