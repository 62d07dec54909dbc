# clip-web: `make run` serves the app, `make test` runs every test. Both set up what they need.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
MODELS_DIR ?=

.PHONY: setup setup-test assets run test reference-models reference-models-full bench bench-quick check-browser clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test: $(VENV)/.base pyproject.toml
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

setup: $(VENV)/.base assets

setup-test: $(VENV)/.test assets

assets: $(VENV)/.base
	$(VENV)/bin/clip-web assets

run: setup
	$(VENV)/bin/clip-web serve --host $(HOST) --port $(PORT) $(if $(MODELS_DIR),--models-dir $(MODELS_DIR))

check-browser:
	@test -x "$${CLIP_WEB_CHROMIUM:-/usr/bin/chromium}" || { \
	  echo "Chromium is missing: install it with 'apt-get install -y chromium' (Debian)"; exit 1; }
	@test -x "$${CLIP_WEB_FIREFOX:-/usr/bin/firefox-esr}" && test -x /usr/bin/WebKitWebDriver && test -x /usr/bin/Xvfb || { \
	  echo "Firefox or WebKit is missing: install them with 'apt-get install -y firefox-esr webkit2gtk-driver xvfb' (Debian)"; exit 1; }

reference-models: $(VENV)/.test
	$(PY) tests/reference/build_models.py
	$(PY) tests/reference/build_siglip.py

reference-models-full: $(VENV)/.test
	$(PY) tests/reference/build_models.py --full

test: setup-test check-browser reference-models
	$(PY) -m pytest

# Benchmarks are scripts, not tests: each prints medians and writes raw samples to benchmarks/results/.
$(VENV)/.bench: $(VENV)/.test pyproject.toml
	$(PY) -m pip install --quiet -e ".[bench]"
	touch $@

bench: setup-test $(VENV)/.bench check-browser reference-models-full
	$(PY) benchmarks/compare.py
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/pyapp_speed.py
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/model_variants.py
	$(PY) benchmarks/search_index.py

bench-quick: setup-test $(VENV)/.bench check-browser reference-models
	$(PY) benchmarks/compare.py --quick --docs .cache/bench-quick
	$(PY) benchmarks/startup.py --runs 1
	$(PY) benchmarks/pyapp_speed.py --runs 5
	$(PY) benchmarks/inference.py --kinds tiny --runs 5

clean:
	rm -rf $(VENV) .cache test-artifacts
