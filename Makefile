# align-track: every target sets itself up (uv from pip if missing, the environment from uv.lock).
SHELL := /bin/bash
PY ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PY) -m uv")
BIN := .venv/bin
DEMO_DIR ?= data/demo
DEMO_URI ?= sqlite:///data/mlflow/mlflow.db

.PHONY: setup demo test fuzz monkey bench lint screenshots clean

setup: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PY) -m uv --version >/dev/null 2>&1 || $(PY) -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode
	@touch $@

## demo: make demo run folders, ingest them into the embedded SQLite store, open the TUI
demo: setup
	@[ -d $(DEMO_DIR) ] || $(BIN)/align-track demo-data $(DEMO_DIR) --experiments 24 --scenes 8 --seed 0
	$(BIN)/align-track ingest --experiments-dir $(DEMO_DIR) --mlflow-uri $(DEMO_URI) 2>&1 | tee $(DEMO_DIR)/.ingest.log
	@if [ -t 1 ] && $(BIN)/align-track tui --help >/dev/null 2>&1; then \
		$(BIN)/align-track tui --mlflow-uri $(DEMO_URI) --experiments-dir $(DEMO_DIR) \
			--notice "ingest: $$(grep '^ingested=' $(DEMO_DIR)/.ingest.log | tail -n 1)"; \
	else \
		$(BIN)/align-track list-runs --mlflow-uri $(DEMO_URI) 2>/dev/null || true; \
	fi

## test: the whole suite against real SQLite stores, mlflow server subprocesses and PostgreSQL, one pytest worker
## per core (pytest-xdist; a test file stays on one worker: its module fixtures are built once); PYTEST_WORKERS=0 runs it in one process
PYTEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## fuzz: the hostile-folder generator's long profile (300 examples; ALIGN_TRACK_HOSTILE_EXAMPLES=N to change) on
## every backend: SQLite, PostgreSQL direct, mlflow server on SQLite and on PostgreSQL (make test runs 5 of them);
## then the scene reader's piece cuts against whole-text wrapping (300; ALIGN_TRACK_PIECES_EXAMPLES=N; make test: 40)
fuzz: setup
	ALIGN_TRACK_HYPOTHESIS=hostile-long $(BIN)/python -m pytest -q tests/store/test_hostile_backends.py \
		--hypothesis-show-statistics $(PYTEST_ARGS)
	ALIGN_TRACK_HYPOTHESIS=pieces-long $(BIN)/python -m pytest -q tests/tui/test_long_text_pieces.py \
		--hypothesis-show-statistics $(PYTEST_ARGS)

## monkey: the TUI monkey test's long profile: 4 fresh random seeds (printed), 400 steps each, no time budget
## (ALIGN_TRACK_MONKEY_SEED=1,2 / ALIGN_TRACK_MONKEY_STEPS=N to choose; make test runs 2 fixed seeds for 20 s each)
monkey: setup
	ALIGN_TRACK_MONKEY=long $(BIN)/python -m pytest -q -s tests/tui/test_monkey.py -k test_monkey $(PYTEST_ARGS)

## bench: every benchmark, each figure as a ratio against a baseline measured in the same run, same repeats on
## both sides; results in bench-results/<name>.json, then the README's speed table is rebuilt from them
## (bench_scale: 100,000 runs, several minutes, most of them the mlflow.search_runs baseline)
bench: setup
	$(BIN)/python -m tests.benchmarks.bench_ingest
	$(BIN)/python -m tests.benchmarks.bench_load_runs --runs 10000
	$(BIN)/python -m tests.benchmarks.bench_query --runs 10000
	$(BIN)/python -m tests.benchmarks.bench_tui
	$(BIN)/python -m tests.benchmarks.bench_scene_reader
	$(BIN)/python -m tests.benchmarks.bench_scenes --tui $$(pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && echo --postgres)
	$(BIN)/python -m tests.benchmarks.bench_scale
	$(BIN)/python -m tests.benchmarks.bench_scene_index $$(pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && echo --postgres)
	@if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then $(BIN)/python -m tests.benchmarks.bench_server; \
	else echo "bench_server skipped: no PostgreSQL at 127.0.0.1:5432"; fi
	$(BIN)/python -m tests.benchmarks.bench_watch
	$(BIN)/python -m tests.benchmarks.bench_web_ui
	$(BIN)/python -m tests.benchmarks.bench_start $$(pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && echo --postgres)
	$(BIN)/python -m tests.benchmarks.speed_table

## screenshots: an SVG of each TUI pane into screenshots/ (demo store built in a temp dir)
screenshots: setup
	$(BIN)/python -m align_track.demo.screenshots

lint: setup
	$(BIN)/ruff check align_track tests

clean:
	rm -rf .venv data .pytest_cache
