# Everything runs from the project's own virtualenv (.venv), created by `make install`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install install-bench services migrate test test-fast test-rabbitmq chaos test-fleet fuzz \
        bench bench-quick bench-runtime bench-payments bench-cashback bench-fleet \
        demo sandbox worker beat api flower constraints bench-scrape bench-burst \
        bench-transport clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

# Installed once, and again when the dependencies change: a pip run costs more than the fast
# test layer itself.
$(BIN)/pytest: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install-bench: install
	$(BIN)/pip install --quiet -e '.[test,bench]'

# Starts PostgreSQL, Redis and RabbitMQ when they are not running (as on a fresh CI machine).
services:
	@scripts/ensure-services

migrate: install services
	$(BIN)/celgate migrate --create

## The test command (README): unit, integration and fault tests against real services.
test: install services
	$(BIN)/pytest -m 'not chaos and not fleet' tests

## Steps, the payment processor and the charge job (and the table tests of its pure decision)
## against in-memory peers: no PostgreSQL, Redis, worker or sandbox; seconds. The top-level
## conftest (test slot, broker) stays out (--confcutdir), and so do pytest plugins the layer
## does not use (they take seconds to import). `make test` runs these files too.
FAST_TESTS := tests/fast tests/cashback/test_charge_decisions.py
test-fast: $(BIN)/pytest
	PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(BIN)/pytest -q -p no:cacheprovider --confcutdir tests/fast \
	    $(FAST_TESTS)

## The tests whose behaviour goes through the broker, again on RabbitMQ (a vhost per run).
test-rabbitmq: install services
	CELGATE_TEST_BROKER=rabbitmq $(BIN)/pytest -m 'broker and not chaos and not fleet' tests

## Long fault-injection runs, kept out of `make test`.
chaos: install services
	$(BIN)/pytest -m chaos tests

## Workers on three hosts made of network namespaces (root): one host SIGKILLed, another's link
## cut for 15 s, under payments and cashback orders; nothing lost or doubled. A few minutes;
## PostgreSQL, Redis, the sandbox and the API are the run's own, on the hosts' bridge.
test-fleet: install
	$(BIN)/pytest -m fleet tests/fleet

## Payments captured per second by 1, 2 and 3 worker hosts of the same fleet (a table).
bench-fleet: install
	$(BIN)/python -m tests.fleet.bench

## Long property and fuzz runs (many more examples than in `make test`), kept out of it.
fuzz: install services
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -m 'not chaos' tests/properties tests/fuzz

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

## The metrics scrape at a million machines vs counting them (README, Operations).
bench-scrape: install services
	$(BIN)/python -m benchmarks.scrape_bench

## 10,000 timers due together among 1,000,000 parked: how fast the sweeper sends them all.
bench-burst: install services
	$(BIN)/python -m benchmarks.burst_bench

## One JSON peer call, 2000 times, through our transport, httpx and requests (clients/).
bench-transport: install-bench
	$(BIN)/python -m benchmarks.transport_bench

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

## Flower on http://127.0.0.1:5555 for the task list; needs FLOWER_BASIC_AUTH=user:password
## (or CELGATE_LOCAL_DEMO=1 on a machine of your own).
flower: install
	$(BIN)/celery -A workers flower --address=127.0.0.1 --port=5555

## Pins of every dependency for the image (docker/constraints.txt), from a fresh install.
constraints: install
	@{ echo "# Pinned dependency versions for the image (pip install -c). Regenerate with"; \
	   echo "# \`make constraints\` after changing the dependencies in pyproject.toml."; \
	   $(BIN)/pip freeze --exclude-editable | grep -v '^-e\|^#'; } > docker/constraints.txt

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
