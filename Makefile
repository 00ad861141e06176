# Two commands on a fresh machine:
#   make quickstart   set up .venv, then reconstruct (and generate) images from the shipped weights
#   make test         set up .venv, then run every unit test and every notebook (nbval)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: quickstart test setup exercises clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[notebooks,test]"
	touch $(STAMP)

setup: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/python -m var_tutorial quickstart $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg -q $(ARGS)

clean:
	rm -rf $(VENV) runs outputs
