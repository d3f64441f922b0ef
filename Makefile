# Two commands for newcomers (README.rst):
#   make run    set up a virtualenv, create or upgrade the database in ./var and start the service
#               on IMAGEDATA_BIND (default 127.0.0.1:9292)
#   make test   set up a virtualenv with the test extras and run the whole test suite (and the docs build)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export IMAGEDATA_DATA_DIR ?= $(CURDIR)/var
export IMAGEDATA_STORES ?= local=file://$(IMAGEDATA_DATA_DIR)/images,archive=file://$(IMAGEDATA_DATA_DIR)/archive
export IMAGEDATA_BIND ?= 127.0.0.1:9292
PYTEST_ARGS ?=

.PHONY: run test soak install install-test db-sync clean help

help:
	@echo "make run     start imagedata on $(IMAGEDATA_BIND) (data in $(IMAGEDATA_DATA_DIR))"
	@echo "make test    run the whole test suite"
	@echo "make soak    two minutes of traffic and faults on two hosts (after make test in CI)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg setup.py
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed setup.cfg
	$(BIN)/python -m pip install -q -e '.[test,keystone]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

db-sync: install
	$(BIN)/imagedata db-sync

run: db-sync
	@$(BIN)/python -m imagedata.cli.quickstart
	exec $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Two minutes of mixed traffic and faults on two hosts (PostgreSQL, SeaweedFS, nginx); see tests/soak/.
soak: install-test
	$(BIN)/python -m pytest -s tests/soak/test_soak.py --run-soak $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
