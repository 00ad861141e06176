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

test: $(STAMP)
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg -q $(ARGS)

test-browser: $(STAMP)
	$(BIN)/python -m pytest -m browser tests/test_browser.py -q $(ARGS)

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
