# Everything runs from the project's own virtualenv (.venv), created by `make install`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install install-bench services migrate test test-rabbitmq chaos bench bench-quick \
        bench-runtime bench-payments bench-cashback \
        demo sandbox worker beat api clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

install-bench: install
	$(BIN)/pip install --quiet -e '.[test,bench]'

# Starts PostgreSQL, Redis and RabbitMQ when they are not running (as on a fresh CI machine).
services:
	@scripts/ensure-services

migrate: install services
	$(BIN)/celgate migrate --create

## The test command (README): unit, integration and fault tests against real services.
test: install services
	$(BIN)/pytest -m 'not chaos' tests

## The tests whose behaviour goes through the broker, again on RabbitMQ (a vhost per run).
test-rabbitmq: install services
	CELGATE_TEST_BROKER=rabbitmq $(BIN)/pytest -m 'broker and not chaos' tests

## Long fault-injection runs, kept out of `make test`.
chaos: install services
	$(BIN)/pytest -m chaos tests

## Every benchmark and baseline from one run, into docs/bench (a table and a chart).
bench: install-bench services
	$(BIN)/python -m benchmarks.report

## The same at small sizes, into build/bench: a check that the benchmarks still run.
bench-quick: install-bench services
	$(BIN)/python -m benchmarks.report --quick --out build/bench

bench-runtime: install services
	$(BIN)/python -m benchmarks.runtime_bench

bench-payments: install services
	$(BIN)/python -m benchmarks.payments_bench

bench-cashback: install services
	$(BIN)/python -m benchmarks.cashback_bench

## The demo command (README): sandbox peers, a worker, beat and the API, end to end.
demo: migrate
	$(BIN)/python -m celgate.demo

sandbox: install
	$(BIN)/celgate-sandbox

worker: install
	$(BIN)/celery -A workers worker --loglevel INFO

beat: install
	$(BIN)/celery -A workers beat --loglevel INFO

api: install
	$(BIN)/celgate-api

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
