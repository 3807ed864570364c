# Every target bootstraps .venv itself on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-setup run lint check bench clean install systemd-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/stepd demo

# The tests that mostly wait on real time run beside the rest (tests/run.sh).
test: test-setup $(STAMP) lint systemd-check
	PYTEST=$(BIN)/pytest bash tests/run.sh

# What the tests need from the machine (Chromium, chromedriver, libfaketime, node and npm,
# systemd-nspawn, PostgreSQL): as root, installed with apt-get and started; otherwise the
# apt-get line to run, and a stop.
test-setup:
	bash tests/setup.sh

# The unit: systemd-analyze verify, and an offline exposure score of at most 1.5.
systemd-check: $(STAMP)
	VENV=$(CURDIR)/$(VENV) bash systemd/check.sh

# As root: /opt/stepd/venv, the unit, /etc/stepd and a signing secret (systemd/README.md).
# NETWORK=any (or NETWORK="10.0.0.5 192.0.2.0/24") lets the service reach other hosts.
install:
	NETWORK="$(NETWORK)" bash systemd/install.sh

# The example config, with its state in .state/ instead of /var/lib/stepd (any user can run
# it; STATE=folder chooses another place).
STATE ?= $(CURDIR)/.state
run: $(STAMP)
	STEPD_STORE__PATH="$(STATE)/stepd.db" $(BIN)/stepd run -c config/stepd.toml

check: $(STAMP)
	$(BIN)/stepd check -c config/stepd.toml

lint: $(STAMP)
	$(BIN)/ruff check daemon tests bench
	$(BIN)/ruff format --check daemon tests bench
	$(BIN)/mypy

# The long mode of the chaos, fault and clock suites (about 35 min); figures go to
# tests/soak/FIGURES.md. The clock tests need libfaketime, which test-setup installs.
# It also explores with the property tests and the API fuzz: a fresh draw of 20,000 examples
# each (`make test` replays the same 300 every run; profiles in tests/conftest.py).
.PHONY: soak
soak: test-setup $(STAMP)
	STEPD_SOAK=1 $(BIN)/pytest -q tests/soak \
		tests/integration/test_nodes.py::test_a_killed_nodes_call_in_flight_is_sent_again_by_a_survivor_with_its_key
	$(BIN)/pytest -q -p no:cacheprovider --hypothesis-profile=explore \
		tests/unit/test_properties.py \
		tests/integration/test_api_fuzz.py::test_generated_requests_never_get_a_5xx

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
