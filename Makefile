# Two commands: `make book` builds the HTML book, `make test` proves it.
# Both set up .venv first; the install re-runs only when requirements.txt or
# pyproject.toml changed since the last one.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUILD_CHECK_DIR := _build/check

.PHONY: book test test-unit test-notebooks test-build execute kernel bench clean

book: $(STAMP)
	$(BIN)/jupyter-book build . --path-output _build/book-build
	rm -rf _build/html && cp -r _build/book-build/_build/html _build/html
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

test: $(STAMP)
	$(MAKE) --no-print-directory test-unit test-notebooks test-build

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install -r requirements.txt
	touch $(STAMP)

# 1. unit tests and doctests of lossnotes, and the checks on the book's sources (test_site.py)
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/ --ignore=tests/browser --doctest-modules lossnotes

# 2. every chapter re-executed in a fresh kernel of this venv; outputs compared strictly
test-notebooks: $(STAMP)
	$(BIN)/python -m pytest --nbval --nbval-current-env book/

# 3. the book builds with warnings as errors (broken references and citations fail); that
#    fresh build is then checked as files (nothing from another host, alt text, downloads)
#    and in headless Chromium (math typeset, images loaded, no console error, search,
#    solutions toggle; screenshots in _build/screenshots/), and removed when all pass
test-build: $(STAMP)
	rm -rf $(BUILD_CHECK_DIR)
	$(BIN)/jupyter-book build . --path-output $(BUILD_CHECK_DIR) -W -n --keep-going
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  echo "NOTE: Chromium not found, so the real-browser test is skipped (under CI=true it fails)." \
	       "Install it with: sudo apt-get install chromium chromium-driver"
	LOSSNOTES_SITE=$(BUILD_CHECK_DIR)/_build/html $(BIN)/python -m pytest tests/browser -rs
	rm -rf $(BUILD_CHECK_DIR)

# Re-run a chapter top to bottom in a fresh kernel and store its outputs:
#   make execute NB=book/02_entropy.ipynb
execute: $(STAMP)
	$(BIN)/python scripts/execute_notebook.py $(NB)

# Register this venv as a Jupyter kernel, "Python (lossnotes)", for your own Jupyter.
kernel: $(STAMP)
	$(BIN)/python -m ipykernel install --user --name lossnotes --display-name "Python (lossnotes)"

# Benchmarks measure this machine; they are not part of `make test`.
bench: $(STAMP)
	$(BIN)/python benchmarks/large_vocab.py

clean:
	rm -rf _build
