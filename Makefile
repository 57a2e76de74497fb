# `make run` serves the demo; `make test` runs every test. Both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
space := $(subst ,, )
comma := ,
PLUGINS := plugins/coach plugins/projectleider plugins/external_party plugins/email_notifications plugins/webhooks plugins/laposta
# `make run` logs outgoing e-mail instead of sending it; GRAPHQL_API_SMTP_CATCH=false make run sends.
GRAPHQL_API_SMTP_CATCH ?= true

.PHONY: install run test lint format schema clean bench bench-outbox bench-writes bench-import bench-export bench-peer mutation mutation-sample graphiql-assets deploy-test scale-test

install: $(STAMP)

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' $(addprefix -e ,$(PLUGINS))
	touch $(STAMP)

run: install
	$(BIN)/graphql-api migrate
	$(BIN)/graphql-api seed --demo
	GRAPHQL_API_DEV_MODE=true GRAPHQL_API_SMTP_CATCH=$(GRAPHQL_API_SMTP_CATCH) $(BIN)/graphql-api serve

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The schema with the built-in plugins alone, whatever else is installed.
schema: install
	GRAPHQL_API_PLUGINS=$(subst $(space),$(comma),$(notdir $(PLUGINS))) $(BIN)/graphql-api export-schema > schema.graphql
	$(BIN)/graphql-api export-schema --portal > portal-schema.graphql

# GraphiQL's pinned builds (versions in scripts/graphiql/package.json, locked by its
# package-lock.json) into graphql_api/web/graphiql/static/: the files the page loads and their
# licences. Run it after changing a version there, and commit what it copied.
GRAPHIQL_NPM := scripts/graphiql/node_modules
GRAPHIQL_STATIC := graphql_api/web/graphiql/static
graphiql-assets:
	cd scripts/graphiql && npm ci --ignore-scripts --no-audit --no-fund
	cp $(GRAPHIQL_NPM)/graphiql/graphiql.min.js $(GRAPHIQL_NPM)/graphiql/graphiql.min.css \
		$(GRAPHIQL_NPM)/react/umd/react.production.min.js \
		$(GRAPHIQL_NPM)/react-dom/umd/react-dom.production.min.js $(GRAPHIQL_STATIC)/
	cp $(GRAPHIQL_NPM)/graphiql/LICENSE $(GRAPHIQL_STATIC)/LICENSE.graphiql
	cp $(GRAPHIQL_NPM)/react/LICENSE $(GRAPHIQL_STATIC)/LICENSE.react

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache mutants

# Benchmark on dataset M, SQLite then PostgreSQL (127.0.0.1:5432); tables go to bench/RESULTS.md.
bench: install
	printf '# Benchmark results\n\nWritten by `make bench`; see bench/README.md for what is measured.\n' > bench/RESULTS.md
	$(BIN)/python bench/run.py --backend sqlite --size M --results bench/RESULTS.md
	$(BIN)/python bench/run.py --backend postgresql --size M --results bench/RESULTS.md

# Bulk and single membership changes through HTTP (`graphql-api serve` and `graphql-api worker`
# on a copy of dataset M, then L, in PostgreSQL), with their raw-SQL floor; each run appends
# its section to bench/RESULTS-writes.md. L takes minutes to seed the first time.
bench-writes: install
	test -f bench/RESULTS-writes.md || printf '# Write costs of derived membership\n\nWritten by `make bench-writes` (`bench/writes.py`); see bench/README.md.\n' > bench/RESULTS-writes.md
	$(BIN)/python bench/writes.py --size M --results bench/RESULTS-writes.md
	$(BIN)/python bench/writes.py --size L --results bench/RESULTS-writes.md

# A contact import of 100,000 rows (CSV, then XLSX) through HTTP on copies of dataset M, in
# PostgreSQL (with its COPY floor) then SQLite; appends under "## Import" in bench/RESULTS-import.md.
bench-import: install
	$(BIN)/python bench/import.py --backend postgresql --backend sqlite --results bench/RESULTS-import.md

# Downloads on PostgreSQL: the largest group of dataset L, and the contacts x groups report of
# 20 groups over 1,000,000 contacts (its database is seeded once, in about a minute).
bench-export: install
	$(BIN)/python bench/export.py --size L --results bench/RESULTS-import.md
	$(BIN)/python bench/export.py --report --results bench/RESULTS-import.md

# The outbox's cost on addGroupMembers and the worker's e-mails per second, both databases.
bench-outbox: install
	printf '# Outbox benchmark results\n\nWritten by `make bench-outbox` (`bench/outbox.py`); see bench/README.md.\n' > bench/RESULTS-outbox.md
	$(BIN)/python bench/outbox.py --backend sqlite --results bench/RESULTS-outbox.md
	$(BIN)/python bench/outbox.py --backend postgresql --results bench/RESULTS-outbox.md

# Group mail: the mails per second a `graphql-api worker` sends to an SMTP server on
# loopback (aiosmtpd), one mail to 10,000 members, SQLite then PostgreSQL (127.0.0.1:5432).
.PHONY: bench-mail
bench-mail: install
	$(BIN)/python bench/group_mail.py --backend sqlite --backend postgresql --members 10000

# Our API next to PostGraphile 5 on dataset M in PostgreSQL, one process each; wrk loads
# them in turn. Installs wrk and PostGraphile (bench/peer/package-lock.json) when missing.
bench-peer: install
	command -v wrk > /dev/null || (apt-get update -qq && apt-get install -y -qq wrk > /dev/null)
	test -d bench/peer/node_modules || npm ci --prefix bench/peer --no-audit --no-fund --loglevel=error
	printf '# Our API next to PostGraphile 5\n\nWritten by `make bench-peer` (`bench/peer/run.py`); see bench/README.md.\n' > bench/RESULTS-peer.md
	$(BIN)/python bench/peer/run.py --workers 2 --results bench/RESULTS-peer.md

# Mutation testing of the domain core ([tool.mutmut] in pyproject.toml; docs/testing.md has
# the scores and the bounds). `make mutation` starts afresh, runs every mutant on SQLite
# (15 to 25 minutes on 2 cores) and prints the score per module.
mutation: install
	rm -rf mutants
	GRAPHQL_API_TEST_DATABASE_URL= $(BIN)/mutmut run
	$(BIN)/mutmut results --all true | $(BIN)/python scripts/mutation_scores.py

# The fixed sample of mutants in scripts/mutation_sample.txt (CI runs it, a few minutes);
# fails unless every one of them is killed. It starts afresh too: mutants/ is replaced.
MUTATION_SAMPLE := scripts/mutation_sample.txt
mutation-sample: install
	rm -rf mutants
	GRAPHQL_API_TEST_DATABASE_URL= $(BIN)/mutmut run $(shell sed -e 's/\#.*//' $(MUTATION_SAMPLE))
	$(BIN)/mutmut results --all true | $(BIN)/python scripts/mutation_scores.py --require-killed $(MUTATION_SAMPLE)

# nginx from deploy/nginx/ with a self-signed certificate in front of two `serve` processes
# (tests/test_proxy.py; `make test` runs it too). Installs Debian's nginx when missing.
deploy-test: install
	command -v nginx > /dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx > /dev/null)
	CI=true $(BIN)/pytest -q tests/test_proxy.py

# Hosts as network namespaces (as root): PostgreSQL, two API hosts, a worker and nginx,
# under load while their processes are killed (bench/scale.py; docs/reliability.md).
scale-test: install
	command -v nginx > /dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx > /dev/null)
	$(BIN)/python bench/scale.py --seconds 60
