# The commands a newcomer needs: `make book`, `make test`, and for students `make lab`. Each sets itself up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MATHJAX_VERSION := 3.2.2
MATHJAX := _build/extra/mathjax/tex-mml-chtml.js
# A student's work folder: `make lab` copies the exercises there and never overwrites a file in it.
WORK ?= work

# Keep TensorFlow's C++ start-up lines out of every kernel and every log (DESIGN.md: both are needed).
export TF_CPP_MIN_LOG_LEVEL := 2
export TF_ENABLE_ONEDNN_OPTS := 0
export KERAS_BACKEND := tensorflow
export PYTHONHASHSEED := 0
# Two cores: one kernel per core, one thread per kernel keeps results identical across machines.
export OMP_NUM_THREADS := 1

.PHONY: help setup book book-instructor browser test exercises solutions grade lab dist clean

help:
	@echo "make book       build the HTML book into _build/html (sets everything up first)"
	@echo "make book-instructor   the same plus solutions and the grading guide, in _build/instructor"
	@echo "make lab        for students: copy the exercises into $(WORK)/ (never overwrites) and start JupyterLab"
	@echo "make test       run every test: package, notebooks (nbval), exercises, grader, built book in a browser"
	@echo "make exercises  regenerate exercises/ from solutions/"
	@echo "make solutions  re-execute solutions/ in place (outputs are committed), then regenerate exercises"
	@echo "make dist       build the course's wheel (exercises included) into dist/"
	@echo "make grade SUBMISSIONS=dir OUT=dir [GRADE_ARGS=...]   grade a folder of student submissions"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,lab,dask]'
	@touch $@

$(MATHJAX):
	@mkdir -p _build/npm _build/extra
	cd _build/npm && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null && tar xzf mathjax-$(MATHJAX_VERSION).tgz
	rm -rf _build/extra/mathjax && cp -r _build/npm/package/es5 _build/extra/mathjax

# --all: warnings of unchanged pages are only seen on a full build; the execution cache keeps it fast.
book: $(STAMP) $(MATHJAX)
	$(VENV)/bin/jupyter-book build --all -W -n --keep-going --quiet .

# The student edition plus the solutions and the grading guide, in _build/instructor/_build/html.
book-instructor: $(STAMP) $(MATHJAX)
	$(PY) -m course instructor-sources _build/instructor-src
	$(VENV)/bin/jupyter-book build --all -W -n --keep-going --quiet --path-output _build/instructor \
	  --config _build/instructor-src/_config.yml --toc _build/instructor-src/_toc.yml .

exercises: $(STAMP)
	$(PY) -m course exercises

solutions: $(STAMP)
	$(PY) -m course execute solutions/*.ipynb
	$(PY) -m course exercises

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser of its own).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The book builds execute one page at a time (one kernel, one busy core). So `make test` runs two chains side by
# side: the two builds followed by the tests of the built book (BOOK_TESTS: a module that reads _build/ must be listed
# here; tests/book_build.py fails it otherwise), with their output in _build/book-tests.log, printed at the end; and
# every other test. It fails if any step fails.
BOOK_TESTS := tests/test_book_browser.py tests/test_book_editions.py
PYTEST := $(PY) -m pytest -p no:cacheprovider --durations=15

test: $(STAMP) $(MATHJAX) browser
	@mkdir -p _build
	@( $(MAKE) --no-print-directory book book-instructor || exit 101; $(PYTEST) $(BOOK_TESTS) ) \
	  >_build/book-tests.log 2>&1 & books=$$!; \
	trap 'kill $$books 2>/dev/null' INT TERM; \
	COURSE_BOOK_BUILDING=1 $(PYTEST) -n 2 --dist loadfile tests solutions \
	  --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg $(addprefix --ignore=,$(BOOK_TESTS)); tests=$$?; \
	echo "Waiting for the book builds and their tests (log: _build/book-tests.log)"; \
	wait $$books; books=$$?; cat _build/book-tests.log; \
	if [ $$books -eq 101 ]; then echo "make book book-instructor failed (log above)"; \
	elif [ $$books -ne 0 ]; then echo "the tests of the built book failed (log above)"; fi; \
	if [ $$tests -ne 0 ]; then exit $$tests; fi; exit $$books

# A student's JupyterLab on 127.0.0.1, offline, in their own work folder (WORK=dir to choose another).
lab: $(STAMP)
	$(PY) -m course lab $(WORK)

# The wheel a student can `pip install` anywhere: the course package with the exercise notebooks inside.
dist: $(STAMP)
	rm -rf build
	$(PY) -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w dist .

grade: $(STAMP)
	$(PY) -m course grade "$(SUBMISSIONS)" --out "$(OUT)" $(GRADE_ARGS)

clean:
	rm -rf _build .jupyter_cache
