# tlspcap: `make demo` analyses the shipped fixtures, `make test` runs the checks and the tests.
# Both install what they need on a fresh Debian machine (a venv, and tshark for the tests).

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
APT     := DEBIAN_FRONTEND=noninteractive apt-get install -y -q
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck unit sysdeps-test sysdeps-fixtures fixtures clean engine engine-test

# The compiled packet engine (engine/, Rust + PyO3) is built into the venv by maturin when cargo
# is present; without cargo, tlspcap runs on its pure-Python path (same results, slower).
CARGO   ?= $(shell command -v cargo 2>/dev/null || ls $$HOME/.cargo/bin/cargo 2>/dev/null)
ENGINE_SRC := $(wildcard engine/Cargo.toml engine/Cargo.lock engine/pyproject.toml engine/src/*.rs engine/src/*/*.rs)
ENGINE_STAMP := $(VENV)/.engine
ifneq ($(CARGO),)
export PATH := $(dir $(CARGO)):$(PATH)
ENGINE_DEP := $(ENGINE_STAMP)
# the tests fail, instead of skipping, when the engine that was built cannot be imported
UNIT_ENV := TLSPCAP_REQUIRE_ENGINE=1
endif

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,cluster]'
	touch $(STAMP)

# System tools the tests call: tshark for the Wireshark cross-check, Debian's chromium to load
# the HTML report in a real browser, and Debian's chromium-driver for Selenium to drive it
# through `tlspcap serve` (nothing downloads a browser). One apt-get update, then one install
# of what is missing.
sysdeps-test:
	@missing=""; \
	command -v tshark >/dev/null || missing="$$missing tshark"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	[ -z "$$missing" ] || { $(SUDO) apt-get update -q && $(SUDO) $(APT) $$missing; }

# System tools only needed to regenerate the fixtures from real TLS stacks.
sysdeps-fixtures: sysdeps-test
	@missing=""; \
	for p in tcpdump:tcpdump gnutls-cli:gnutls-bin nginx:nginx-light openssl:openssl curl:curl ip:iproute2 javac:openjdk-17-jdk-headless \
	         iptables:iptables faketime:faketime go:golang-go; do \
	  command -v $${p%%:*} >/dev/null || missing="$$missing $${p#*:}"; done; \
	[ -z "$$missing" ] || { $(SUDO) apt-get update -q && $(SUDO) $(APT) $$missing; }

$(ENGINE_STAMP): $(STAMP) $(ENGINE_SRC)
	$(PY) -m pip install -q 'maturin>=1.5,<2'
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop -q --release -m engine/Cargo.toml
	touch $(ENGINE_STAMP)

engine: $(ENGINE_STAMP)

# The engine's own tests: unit and property tests, then a fuzz smoke run (proptest on whole
# captures, seeded from the fixtures: cargo fuzz needs a nightly toolchain this machine lacks).
engine-test:
ifneq ($(CARGO),)
	cd engine && cargo test -q --release
	cd engine && PROPTEST_CASES=200000 cargo test -q --release --test fuzz
else
	@echo "cargo not found: the engine is not built, its tests are skipped"
endif

# The main job on the shipped fixtures (exit code 1 = failed handshakes found, as expected here).
demo: $(STAMP) $(ENGINE_DEP)
	$(VENV)/bin/tlspcap analyze --ca-bundle fixtures/real/certs/root.pem fixtures/real fixtures/crafted || [ $$? -eq 1 ]

lint: $(STAMP)
	$(VENV)/bin/ruff check tlspcap tests fixtures bench fuzz
	$(VENV)/bin/ruff format --check tlspcap

typecheck: $(STAMP)
	$(VENV)/bin/mypy tlspcap

# The suite runs on the default path (the engine, when built), then again on the pure-Python
# path (TLSPCAP_ENGINE=python), so both are held to the same tests.
unit: $(STAMP) $(ENGINE_DEP) sysdeps-test
	$(UNIT_ENV) $(VENV)/bin/pytest -q
ifneq ($(CARGO),)
	TLSPCAP_ENGINE=python $(VENV)/bin/pytest -q --ignore=tests/test_engine.py --ignore=tests/test_lane.py
endif

test: lint typecheck engine-test unit

# Benchmark: generate 100 MB and 1 GB captures (cached in bench/out/), time tlspcap against
# tshark and a bare record loop, and check tlspcap's verdicts against the generator's truth.
.PHONY: bench
bench: $(STAMP) $(ENGINE_DEP)
	@command -v tshark >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) $(APT) tshark; }
	$(PY) bench/gen.py --size 100MB --out bench/out/bench-100MB.pcap
	$(PY) bench/gen.py --size 1GB --out bench/out/bench-1GB.pcap
	$(PY) bench/run.py --batch 4 bench/out/bench-100MB.pcap bench/out/bench-1GB.pcap

# mitmproxy (the interception proxy of make_causes.py) in its own venv: its pinned dependencies
# stay out of the project's.
MITM := $(VENV)/mitmproxy/bin/mitmdump
$(MITM): $(STAMP)
	python3 -m venv $(VENV)/mitmproxy
	$(VENV)/mitmproxy/bin/pip install -q 'mitmproxy>=11,<12'

fixtures: $(STAMP) sysdeps-fixtures $(MITM)
	$(PY) fixtures/gen/make_fixtures.py
	MITMDUMP=$(MITM) $(PY) fixtures/gen/make_causes.py
	$(PY) fixtures/gen/make_degraded.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
