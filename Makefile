# tlspcap: `make demo` analyses the shipped fixtures, `make test` runs the checks and the tests.
# Both install what they need on a fresh Debian machine (a venv, and tshark for the tests).

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
APT     := DEBIAN_FRONTEND=noninteractive apt-get install -y -q
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck unit sysdeps-test sysdeps-fixtures fixtures clean

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

# The main job on the shipped fixtures (exit code 1 = failed handshakes found, as expected here).
demo: $(STAMP)
	$(VENV)/bin/tlspcap analyze --ca-bundle fixtures/real/certs/root.pem fixtures/real fixtures/crafted || [ $$? -eq 1 ]

lint: $(STAMP)
	$(VENV)/bin/ruff check tlspcap tests fixtures bench fuzz
	$(VENV)/bin/ruff format --check tlspcap

typecheck: $(STAMP)
	$(VENV)/bin/mypy tlspcap

unit: $(STAMP) sysdeps-test
	$(VENV)/bin/pytest -q

test: lint typecheck unit

# Benchmark: generate 100 MB and 1 GB captures (cached in bench/out/), time tlspcap against
# tshark and a bare record loop, and check tlspcap's verdicts against the generator's truth.
.PHONY: bench
bench: $(STAMP)
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
