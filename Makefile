# Everything the project needs is installed here, into .venv; nothing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint fuzz venv clean bench bench-quick

demo: $(STAMP)
	$(BIN)/python -m chatd.demo $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check chatd chatctl director tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not slow"

# The tests that wait out deadlines or run traffic for many seconds (secret rotation under
# traffic, the peer and control ports' deadlines, a paused coordinator): about 1.5 min.
test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

# 100,000 inputs per decoder (peer frames, control requests, control lines, the director's
# proof header, the secret file, IRC lines); `make test`
# runs 2,000 each. ARGS: --seed S to replay, --cases N, --decoder NAME, --case I.
# Then 1,500 random runs of the hostile-member state machine (`make test`: 60, fixed).
fuzz: $(STAMP)
	$(BIN)/python -m chatd.testing.fuzz $(ARGS)
	CHAT_FUZZ_EXAMPLES=1500 $(BIN)/pytest -q tests/core/test_adversary_machine.py

lint: $(STAMP)
	$(BIN)/ruff check chatd chatctl director tests bench
	$(BIN)/mypy

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Benchmarks against ngIRCd and the floor (bench/README.md); bench-quick is CI's smoke run.
BENCH_STAMP := $(VENV)/.installed-bench

bench: $(BENCH_STAMP)
	sh bench/setup.sh
	$(BIN)/python -m bench $(ARGS)

bench-quick: $(BENCH_STAMP)
	sh bench/setup.sh
	$(BIN)/python -m bench --quick $(ARGS)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,bench]'
	touch $(BENCH_STAMP)

clean:
	rm -rf $(VENV)
