# The README's two commands: `make demo` and `make test`. Both build .venv on first use,
# installing exactly the versions in requirements.lock (hash-checked); `make lock` upgrades them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# The one tool that writes the lock, pinned so a re-lock resolves the same way everywhere.
UV_VERSION := 0.13.9

.PHONY: demo test browser lint bench lock clean

$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kakin demo $(ARGS)

# Two pytest workers (pytest-xdist): much of the suite waits on servers, processes and the
# databases, so two runs overlap well even on two cores. tests/conftest.py keeps a module's tests
# on one worker and runs one PostgreSQL test at a time. ARGS="-n 0": one process.
test: $(STAMP) browser
	$(BIN)/ruff check src tests bench
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/python -m pytest -n 2 --dist loadgroup $(ARGS)

# The dashboard's browser tests drive Debian's Chromium (never a downloaded one) and need a
# Japanese font. Installed with apt when missing and run as root; otherwise they skip and say why.
JP_FONT := /usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf

browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -f $(JP_FONT) ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-ipaexfont-gothic \
				|| echo "apt-get could not install chromium: the dashboard's browser tests will skip"; \
		else \
			echo "chromium or the Japanese font is missing and cannot be installed here (root and apt-get needed): the dashboard's browser tests will skip"; \
		fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Deliberate upgrade: re-resolve every dependency to its newest release allowed by pyproject.toml,
# then run `make test` and commit requirements.lock (price data included: genai-prices is locked too).
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml build-requirements.in --extra test --generate-hashes \
		--universal --python-version 3.11 --upgrade --quiet --custom-compile-command "make lock" -o $(LOCK)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache test-artifacts
