# Gaveurs Trace: `make run` starts everything, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format venv system-deps migrate bench soak clean

# uv (pinned in scripts/install.sh) when it can be had, else pip; progress and timing printed.
$(BIN)/.installed: requirements.txt
	@PYTHON=$(PYTHON) bash scripts/install.sh
	@touch $@

venv: $(BIN)/.installed

system-deps:
	@bash scripts/system-deps.sh

run: venv
	@bash scripts/run.sh

test: venv system-deps
	@bash scripts/test.sh $(ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Soak and load (bench/soak.py): 50 stations and 200 consumers for 10 minutes by default;
# make soak ARGS="--duration 60" for a shorter run.
soak: venv
	$(BIN)/python bench/soak.py $(ARGS)

# Every bench script with short settings (a few minutes; figures are indicative only).
bench: venv
	$(BIN)/python bench/ingest.py --flat 60 --nested 300
	$(BIN)/python bench/pipeline.py --samples 30 --qr 50 --burst 100
	$(BIN)/python bench/scan.py --seconds 2 --fresh 2000 --unstored 400
	$(BIN)/python bench/ledger.py --sizes 10000 --samples 100 --proofs 200
	$(BIN)/python bench/optimizer.py --lots 1000 --ratings 10000
	$(BIN)/python bench/epcis.py --units 2000 --repeats 1
	$(BIN)/python bench/recall.py --units 5000 --repeats 2
	$(BIN)/python bench/optimizer_quality.py --quick
	$(BIN)/python bench/soak.py --duration 30 --stations 10 --consumers 40

clean:
	rm -rf $(VENV) .pgdata .run artifacts
