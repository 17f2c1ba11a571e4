# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.10 (TFX 1.16 supports 3.9-3.10): on PATH, else under ~/.pyenv.
PYTHON310 := $(or $(shell python3.10 -c "import sys; print(sys.executable)" 2>/dev/null),$(lastword $(sort $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python3.10))))
VENV := .venv
PY := $(VENV)/bin/python
# The stamp names the lock's hash and the recipe's version (pyc: bytecode precompiled).
STAMP := $(VENV)/.installed-$(shell cat requirements.lock 2>/dev/null | md5sum | cut -c1-12)-pyc

export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONPATH := $(CURDIR)
export PYTHONWARNINGS := ignore

DATA ?= synthetic
RUNNER ?= local
ML100K ?= ../shared/data/ml-100k
KFP_IMAGE ?= recsys-tfx:latest
KFP_PIPELINE_ROOT ?= gs://YOUR_BUCKET/recsys/root
KFP_DATA_ROOT ?= gs://YOUR_BUCKET/recsys/data
KFP_OUT ?= .work/kfp/recommender_pipeline.json
BEAM_ARGS ?=
# make test's pytest-xdist processes (tests/conftest.py says how the work is split); 0: none.
TEST_WORKERS ?= 2
XDIST := $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup,)

.PHONY: help setup run run-beam run-movielens tune test test-fast lint clean bench-pipeline bench-ranking \
	bench-retrieval bench-index bench-env bench-serving bench-scale serve query kfp-compile kfp-local image

help:
	@echo "make run            run the whole pipeline on synthetic data (creates .venv first)"
	@echo "make test           run the tests (creates .venv first) on TEST_WORKERS=2 processes"
	@echo "make run-beam       the same pipeline with BeamDagRunner (2 worker processes)"
	@echo "make run-movielens  the pipeline on MovieLens-100K from ML100K=$(ML100K)"
	@echo "make tune           the pipeline with TFX's Tuner on (DATA, RUNNER; TRIALS=8): the two-tower trains with the best trial's hyperparameters"
	@echo "make lint           ruff"
	@echo "make bench-pipeline B5: cold pipeline wall time per component, peak RSS; median of 3 runs (QUICK=1: 1 small run)"
	@echo "make bench-ranking  B2: DIN vs base DNN vs DIN+PReLU on ML-100K (QUICK=1: smaller)"
	@echo "make bench-retrieval B1: MostPopular, EASE^R, two-tower on ML-100K + synthetic (QUICK=1: smaller)"
	@echo "make bench-index    B3: ScaNN vs exact, Faiss (IVF-Flat, IVF-PQ, HNSW), hnswlib at 10k/100k/1M items (QUICK=1: 10k, 100k)"
	@echo "make bench-env      only install B3's peers (bench/requirements-ann.txt) into $(ANN_ENV)"
	@echo "make bench-serving  B4: gRPC server latency/throughput at 10k/100k items (QUICK=1: 10k only)"
	@echo "make bench-scale    B6: cold pipeline at 100K and 1M events, data stages at 10M; time per component, exponents, peak RSS (QUICK=1: 20K, 100K)"
	@echo "make serve          TF-Serving-compatible gRPC :PORT + REST :REST_PORT server of MODEL_BASE_PATH"
	@echo "make query          ask it (or any TF Serving): USER=42 HISTORY='50 172' K=10 [SIGNATURE= JSON=1]"
	@echo "make kfp-compile    write the KFP v2 / Vertex AI IR to $(KFP_OUT) (KFP_IMAGE, KFP_PIPELINE_ROOT, KFP_DATA_ROOT, BEAM_ARGS)"
	@echo "make kfp-local      run the compiled IR 3 times here (pipeline/kfp_local.py): tiny data, full, full, incremental"
	@echo "make image          docker build -f deploy/Dockerfile -t $(KFP_IMAGE) . (needs a Docker engine)"
	@echo "make setup          only create .venv from requirements.lock"
	@echo "variables: DATA=synthetic[:tiny|small|default]|movielens-100k:PATH|csv:PATH RUNNER=local|beam"

$(STAMP): requirements.lock
	@if [ -z "$(PYTHON310)" ]; then \
	  echo "Python 3.10 not found (TFX 1.16 needs 3.9-3.10). Install it, e.g. 'pyenv install 3.10'," \
	       "or put python3.10 on PATH."; exit 1; fi
	@test -x $(PY) || { echo "Creating $(VENV) with $(PYTHON310)"; $(PYTHON310) -m venv $(VENV); }
	@$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip --upgrade
	@echo "Installing requirements.lock into $(VENV) (a few minutes the first time) ..."
	@$(PY) -m pip install -q --disable-pip-version-check uv==0.13.9 && \
	  $(VENV)/bin/uv pip install -q --python $(PY) -r requirements.lock || \
	  $(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	@# uv installs no .pyc, and with PYTHONDONTWRITEBYTECODE set (as on this machine) none
	@# is ever written: every process would recompile TF's sources (~14 s per import).
	@echo "Precompiling the environment's bytecode ..."
	@$(PY) -m compileall -q -j 0 $$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") \
	  >/dev/null 2>&1 || true
	@rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

run: setup
	$(PY) -m pipeline run --runner $(RUNNER) --data $(DATA)

run-beam: setup
	$(PY) -m pipeline run --runner beam --data $(DATA)

run-movielens: setup
	$(PY) -m pipeline run --runner $(RUNNER) --data movielens-100k:$(ML100K)

tune: setup
	$(PY) -m pipeline run --runner $(RUNNER) --data $(DATA) --tune $(if $(TRIALS),--tune-trials $(TRIALS),)

test: setup
	$(PY) -m pytest -q $(XDIST)

test-fast: setup
	$(PY) -m pytest -q $(XDIST) -m "not e2e"

lint: setup
	$(VENV)/bin/ruff check .

QUICK_FLAG := $(if $(QUICK),--quick,)

bench-pipeline: setup
	$(PY) -m bench.pipeline $(QUICK_FLAG) --ml100k $(ML100K)

bench-ranking: setup
	$(PY) -m bench.ranking $(QUICK_FLAG)

bench-retrieval: setup
	$(PY) -m bench.retrieval $(QUICK_FLAG) --data $(ML100K)

# B3's peers (faiss-cpu, hnswlib) are benchmark-only: installed beside .venv, not into it,
# with --no-deps (their numpy and packaging come from requirements.lock, see the file).
ANN_ENV := .venv-ann
ANN_STAMP := $(ANN_ENV)/.installed-$(shell cat bench/requirements-ann.txt 2>/dev/null | md5sum | cut -c1-12)

$(ANN_STAMP): bench/requirements-ann.txt $(STAMP)
	@echo "Installing bench/requirements-ann.txt into $(ANN_ENV) (compiles hnswlib, ~1-2 min) ..."
	@rm -rf $(ANN_ENV)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --target $(ANN_ENV) \
	  -r bench/requirements-ann.txt
	@touch $@

bench-env: $(ANN_STAMP)

bench-index: setup bench-env
	$(PY) -m bench.index $(QUICK_FLAG)

bench-serving: setup
	$(PY) -m bench.serving $(QUICK_FLAG)

bench-scale: setup
	$(PY) -m bench.scale $(QUICK_FLAG)

clean:
	rm -rf .work

# Serving (serving/): a TF-Serving-compatible server and a client for any TF Serving.
HOST ?= localhost
PORT ?= 8500
REST_PORT ?= 8501
MODEL_NAME ?= recommender
MODEL_BASE_PATH ?= .work/serving/$(MODEL_NAME)
SERVE_FLAGS ?=
K ?= 10
HISTORY ?=
SIGNATURE ?= serving_default
# USER is also the login name in the environment: only a command-line USER=... counts.
QUERY_USER := $(if $(filter command line,$(origin USER)),$(USER),1)

serve: setup
	$(PY) -m serving --host $(HOST) --port $(PORT) --rest-port $(REST_PORT) \
	  --model-name $(MODEL_NAME) --model-base-path $(MODEL_BASE_PATH) $(SERVE_FLAGS)

query: setup
	$(PY) -m serving query --host $(HOST) --port $(PORT) --model-name $(MODEL_NAME) \
	  --model-base-path $(MODEL_BASE_PATH) --user $(QUERY_USER) --history $(HISTORY) -k $(K) \
	  --signature $(SIGNATURE) $(if $(JSON),--json,)

kfp-compile: setup
	$(PY) -m pipeline kfp compile --image $(KFP_IMAGE) --output $(KFP_OUT) \
	  --pipeline-root $(KFP_PIPELINE_ROOT) --data-root $(KFP_DATA_ROOT) \
	  $(foreach a,$(BEAM_ARGS),--beam-arg=$(a))

kfp-local: setup
	$(PY) -m pipeline.kfp_local_runs --work .work/kfp-local --train-steps $(or $(TRAIN_STEPS),20)

image:
	@docker info >/dev/null 2>&1 || { echo "make image: no Docker engine on this machine" \
	  "(docker info failed); run 'docker build -f deploy/Dockerfile -t $(KFP_IMAGE) .'" \
	  "where Docker runs"; exit 1; }
	docker build -f deploy/Dockerfile -t $(KFP_IMAGE) .
