# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run test bench bench-kafka bench-abuse bench-storage bench-compression bench-stats clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps re-run the install whenever the packaging files change.
$(VENV)/.installed: setup.py setup.cfg | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.py setup.cfg | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	@mkdir -p data
	@echo "consumer-api on http://$(HOST):$(PORT)  (data in ./data)"
	@echo "Swagger UI:  http://$(HOST):$(PORT)/swagger/"
	@echo "Console:     http://$(HOST):$(PORT)/console/"
	CONSUMER_API_DATA_DIR=$${CONSUMER_API_DATA_DIR:-./data} CONSUMER_API_BIND=$(HOST):$(PORT) \
		$(BIN)/gunicorn -c gunicorn.conf.py

# The jars of a real Apache Kafka broker for the Kafka tests (tests/kafka/pom.xml), fetched
# with Maven into .kafka/libs once; without Java and Maven the Kafka tests skip, saying so.
KAFKA_LIBS := .kafka/libs
$(KAFKA_LIBS)/.fetched: tests/kafka/pom.xml
	@if command -v mvn >/dev/null 2>&1 && command -v java >/dev/null 2>&1; then \
		rm -rf $(KAFKA_LIBS) && \
		mvn -q -B -f tests/kafka/pom.xml dependency:copy-dependencies \
			-DoutputDirectory=$(CURDIR)/$(KAFKA_LIBS) -DincludeScope=runtime && \
		touch $@; \
	else echo "note: no java or mvn: the Kafka tests will skip"; fi

test: $(VENV)/.installed-test $(KAFKA_LIBS)/.fetched
	sh deploy/install-test-packages.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks are never part of `make test`. BENCH_ARGS passes options, e.g.
# `make bench BENCH_ARGS="--quick --only 1,3"`.
bench: $(VENV)/.installed-test
	$(BIN)/python bench/server_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/abuse.py $(BENCH_ARGS)

# the Kafka figures on a local broker, then the same on the embedded store, in one run
bench-kafka: $(VENV)/.installed-test $(KAFKA_LIBS)/.fetched
	$(BIN)/python bench/server_bench.py --backend kafka $(BENCH_ARGS)

bench-abuse: $(VENV)/.installed-test
	$(BIN)/python bench/abuse.py $(BENCH_ARGS)

bench-storage: $(VENV)/.installed-test
	$(BIN)/python bench/storage_bench.py $(BENCH_ARGS)

bench-compression: $(VENV)/.installed-test
	$(BIN)/python bench/compression_bench.py $(BENCH_ARGS)

# topic statistics on 1, 4 and 10 GiB partitions of a day, then on a local Kafka broker
bench-stats: $(VENV)/.installed-test $(KAFKA_LIBS)/.fetched
	$(BIN)/python bench/stats_bench.py --kafka $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info
