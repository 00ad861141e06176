# Two commands on a fresh machine:
#   make quickstart   set up .venv, then reconstruct (and generate) images from the shipped weights
#   make test         set up .venv, then run every unit test and every notebook (nbval)
# The browser tests (tests/test_browser.py: notebooks 06 and 07 in JupyterLab, headless Chromium)
# are part of `make test`; they need Debian's chromium (`make chromium` installs it) and are
# skipped without it, except in CI. `make test-browser` runs them alone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: quickstart test test-browser chromium setup exercises clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[notebooks,test]"
	touch $(STAMP)

setup: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/python -m var_tutorial quickstart $(ARGS)

# the student notebooks in notebooks/exercises/, generated from the solution notebooks' markers
exercises: $(STAMP)
	$(BIN)/python -m var_tutorial make-exercises

# One torch thread per process in the tests (TEST_THREADS=2 or more to change it): on a 2-core
# machine that is busy with other work, two threads that wait for each other at every operation
# ran the quick notebooks 01 and 05 six times slower than one thread (746 s against 126 s beside
# one CPU-bound process); on an idle machine one thread costs about half as much again.
TEST_THREADS ?= 1

test: $(STAMP)
	OMP_NUM_THREADS=$(TEST_THREADS) MKL_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg -q $(ARGS)

test-browser: $(STAMP)
	OMP_NUM_THREADS=$(TEST_THREADS) MKL_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest -m browser tests/test_browser.py -q $(ARGS)

# Debian's chromium for the browser tests (Playwright's own browser download is not used);
# nothing to do when it is already installed; sudo when not root.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation; }
	@chromium --version

clean:
	rm -rf $(VENV) runs outputs
