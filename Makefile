# The one entry point. `make test` and `make demo` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FAST_PATH_SUITES := tests/integration/test_fast_path.py \
	tests/integration/test_manager.py tests/integration/test_get_or_create_errors.py \
	tests/concurrency/test_races.py tests/reliability/test_isolation_and_load.py \
	tests/reliability/test_killed_connections.py
# The whole suite runs once more on the other drivers (psycopg 3, aiomysql):
# its PostgreSQL and MariaDB tests, but for those of what only asyncpg has
# (-m "not asyncpg").
PSYCOPG_URL := postgresql+psycopg://postgres@127.0.0.1:5432/test
AIOMYSQL_URL := mysql+aiomysql://root@127.0.0.1:3306/test

.PHONY: install fmt lint typecheck test check bench bench-quick docs demo demo-api services clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The demo needs the package and, for a DATABASE_URL, its server drivers:
# not the tools. After the first time it starts at once.
DEMO_STAMP := $(VENV)/.demo-installed
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[postgresql,mysql]'
	touch $(DEMO_STAMP)

fmt: install
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

lint: install
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy
	$(BIN)/pyright

services:
	bash scripts/services.sh

test: install services
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	# The get_or_create suites once more on PostgreSQL with the one-statement
	# path forced off: both paths must pass the same tests.
	SQLALCHEMY_OBJECTS_FAST_PATH=0 $(BIN)/coverage run --append -m pytest -q \
		-k postgresql $(FAST_PATH_SUITES)
	DATABASE_URL_POSTGRESQL=$(PSYCOPG_URL) DATABASE_URL_MARIADB=$(AIOMYSQL_URL) \
		$(BIN)/coverage run --append -m pytest -q -k "postgresql or mariadb" \
		-m "not asyncpg"
	$(BIN)/coverage combine -q || true
	$(BIN)/coverage report

check: lint typecheck test docs

# The whole comparison, unattended (about 20 minutes on 2 cores; the peers'
# venvs are made on first use; the request benchmark needs Debian's wrk).
# Results: benchmarks/results/, plots in docs/img/. `make bench-quick` runs
# the same with fewer calls and repeats, for development.
bench: install services
	$(BIN)/python -m pip install --quiet 'matplotlib>=3.8'
	command -v wrk >/dev/null || apt-get install -y wrk
	$(BIN)/python benchmarks/all.py $(BENCH_ARGS)

bench-quick:
	$(MAKE) bench BENCH_ARGS=--quick

docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

demo: $(DEMO_STAMP)
	$(BIN)/python examples/demo.py

demo-api: install
	$(BIN)/uvicorn examples.fastapi_app:app --host 127.0.0.1 --port 8000

clean:
	rm -rf $(VENV) benchmarks/.venvs site dist .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache
	rm -f sqlalchemy_objects.sqlite3*
