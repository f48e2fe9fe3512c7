# Everything the project needs is installed here, into .venv; nothing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-hosts test-nat test-systemd lint fuzz venv clean bench bench-quick lock

demo: $(STAMP)
	$(BIN)/python -m chat_testing.demo $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check chat chat_testing chatd chatctl director tests bench
	$(BIN)/ruff format --check chat chat_testing chatd chatctl director tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not slow and not hosts and not nat"

# The tests that wait out deadlines or run traffic for many seconds, and the longer
# end-to-end variants (secret rotation under traffic, the peer and control ports'
# deadlines, paused and restarted parts, two kills at once, the HTTPS director, a node
# killed under chatctl chat): kept out of `make test` so it stays under 5 minutes.
test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

# Three hosts and a director in network namespaces on one bridge, run with the README's
# "Running a node" commands; a coordinator's host lost, a partition healed. Needs root
# and ip (iproute2, installed here when missing); skipped without root.
test-hosts: $(STAMP)
	command -v ip >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -q && apt-get install -y -q iproute2; }
	$(BIN)/pytest -q -m hosts tests/hosts

# An internet, a director and public nodes, and two homes behind NAT routers (iptables
# MASQUERADE, no port forwarding) with two nodes each, in network namespaces: who can
# reach whom, and the scenarios of issue 13. Root,
# ip and iptables (installed here when missing); skipped without root.
test-nat: $(STAMP)
	{ command -v ip && command -v iptables; } >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -q && apt-get install -y -q iproute2 iptables; }
	$(BIN)/pytest -q -m nat tests/nat

# 100,000 inputs per decoder (peer frames, control requests, control lines, the director's
# proof header, the secret file, IRC lines); `make test`
# runs 2,000 each. ARGS: --seed S to replay, --cases N, --decoder NAME, --case I.
# Then 1,500 random runs of the hostile-member state machine (`make test`: 60, fixed).
fuzz: $(STAMP)
	$(BIN)/python -m chat_testing.fuzz $(ARGS)
	CHAT_FUZZ_EXAMPLES=1500 $(BIN)/pytest -q tests/core/test_adversary_machine.py \
		$(if $(HYPOTHESIS_SEED),--hypothesis-seed=$(HYPOTHESIS_SEED))

# The units under a real systemd, booted with systemd-nspawn in a Debian tree cached in
# /var/cache/chat-test (deploy/test-systemd.sh; needs root). The first run builds the tree.
test-systemd: $(STAMP)
	bash deploy/test-systemd.sh

# Containers, as root (deploy/README.md): podman and what it needs from Debian's packages
# when missing, the Debian base image once, the image from this tree, then a director and
# three nodes with `podman run` and deploy/kube/ with `podman kube play`; the manifests are
# first checked against Kubernetes' schemas (offline). test-kube: the manifests only.
KUBE_VALIDATE := $(VENV)/kube-validate/bin/kubernetes-validate
CONTAINER_SETUP := deploy/setup-podman.sh && deploy/build-image.sh

.PHONY: test-container test-kube

test-container: $(STAMP) $(KUBE_VALIDATE)
	$(KUBE_VALIDATE) --strict --quiet deploy/kube/*.yaml
	$(CONTAINER_SETUP)
	CHAT_CONTAINER_TESTS=1 $(BIN)/pytest -q tests/container

test-kube: $(STAMP) $(KUBE_VALIDATE)
	$(KUBE_VALIDATE) --strict --quiet deploy/kube/*.yaml
	$(CONTAINER_SETUP)
	CHAT_CONTAINER_TESTS=1 $(BIN)/pytest -q tests/container/test_kube_play.py

# A tool, not a dependency of the project: its own venv inside .venv.
$(KUBE_VALIDATE): $(STAMP)
	$(PYTHON) -m venv $(VENV)/kube-validate
	$(VENV)/kube-validate/bin/pip install -q kubernetes-validate==1.37.0

lint: $(STAMP)
	$(BIN)/ruff check chat chat_testing chatd chatctl director tests bench
	$(BIN)/ruff format --check chat chat_testing chatd chatctl director tests bench
	$(BIN)/mypy

venv: $(STAMP)

# Exactly the locked set (every version and hash; pip and setuptools included), then the
# project itself without touching it.
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Rewrites the three locks from pyproject.toml and requirements-tools.in, keeping every
# version they pin (ARGS=--upgrade-package NAME, or ARGS=--upgrade, to move):
# requirements-dev.lock (make venv, CI), then, constrained by it so they never disagree,
# requirements.lock (what a host or the image runs) and requirements-bench.lock (+ matplotlib).
LOCK_VENV := .venv-lock
LOCK := $(LOCK_VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links $(ARGS)

lock:
	test -x $(LOCK_VENV)/bin/pip-compile || \
		{ $(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install -q pip-tools==7.6.2; }
	$(LOCK) --extra dev -o requirements-dev.lock pyproject.toml requirements-tools.in
	$(LOCK) -c requirements-dev.lock -o requirements.lock pyproject.toml requirements-tools.in
	$(LOCK) --extra dev --extra bench -c requirements-dev.lock -o requirements-bench.lock \
		pyproject.toml requirements-tools.in

# Benchmarks against ngIRCd and the floor (bench/README.md); bench-quick is CI's smoke run.
BENCH_STAMP := $(VENV)/.installed-bench

bench: $(BENCH_STAMP)
	sh bench/setup.sh
	$(BIN)/python -m bench $(ARGS)

bench-quick: $(BENCH_STAMP)
	sh bench/setup.sh
	$(BIN)/python -m bench --quick $(ARGS)

$(BENCH_STAMP): $(STAMP) requirements-bench.lock
	$(BIN)/pip install -q --require-hashes -r requirements-bench.lock
	touch $(BENCH_STAMP)

clean:
	rm -rf $(VENV)
