# subgroup-values: `make all` regenerates every table and figure; `make test` runs the tests.
# Each target sets up .venv from requirements.txt on first use.
#   make all   PROFILE=default|smoke|paper   WVS_FILE=/path/to/WVS_Cross-National_Wave_7_csv_v6_0.csv
SHELL := /bin/bash
.DEFAULT_GOAL := all
PROFILE ?= default
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The survey file: data/raw/ first (where users put it), else the copy beside this checkout on project machines.
WVS_FILE ?= $(firstword $(wildcard data/raw/WVS_Cross-National_Wave_7*.csv data/raw/WVS_Cross-National_Wave_7*.zip \
  data/raw/WVS_Cross-National_Wave_7*.sav data/raw/WVS_Cross-National_Wave_7*.dta) \
  $(wildcard ../shared/wvs7_sgp/microdata/WVS_Cross-National_Wave_7_csv_v6_0_SGP_only.csv))
export WVS_FILE
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

RUN_NB := $(PY) -m subgroup_values.notebooks --profile $(PROFILE)
NB_OUT := build/notebooks/$(PROFILE)
PKG := src/subgroup_values
CONFIG := configs/$(PROFILE).yaml
# Package modules each step imports (a change to one reruns only the steps that use it).
MOD_CORE := $(addprefix $(PKG)/,__init__.py questions.py dataset.py provenance.py plots.py notebooks.py)
MOD_DATA := $(MOD_CORE) $(addprefix $(PKG)/,wvs.py subgroups.py)
MOD_LANDSCAPE := $(MOD_CORE) $(addprefix $(PKG)/,landscape.py metrics.py bootstrap.py)
ifeq ($(PROFILE),default)
DATA_DIR := data/processed
else
DATA_DIR := build/$(PROFILE)/data
endif

.PHONY: all setup data landscape figures test smoke clean clean-venv check-wvs help

help:
	@echo "make all [PROFILE=default|smoke|paper] [WVS_FILE=...]  regenerate every table and figure"
	@echo "make test                                             run the tests (including the smoke chain)"
	@echo "make data | figures | smoke | setup | clean"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt 2> >(grep -v "is ignored" >&2)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . || $(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

setup: $(STAMP)

check-wvs:
	@if [ -z "$(WVS_FILE)" ] || [ ! -f "$(WVS_FILE)" ]; then \
	  echo "No WVS survey file found (WVS_FILE='$(WVS_FILE)')."; \
	  echo "Download the official WVS Wave 7 file and put it in data/raw/ or pass WVS_FILE=/path/to/file."; \
	  echo "See data/raw/README.md."; exit 2; fi

# ---- 1. the dataset ---------------------------------------------------------------------------------------
$(DATA_DIR)/manifest.json: notebooks/01_build_dataset.ipynb $(MOD_DATA) data/questions.csv $(CONFIG) $(wildcard $(WVS_FILE)) | $(STAMP)
	@$(MAKE) --no-print-directory check-wvs
	$(RUN_NB) notebooks/01_build_dataset.ipynb -p out_dir $(DATA_DIR)
	@touch $@

data: $(STAMP) $(DATA_DIR)/manifest.json

# ---- 2. the value landscape --------------------------------------------------------------------------------
$(NB_OUT)/02_value_landscape.ipynb: notebooks/02_value_landscape.ipynb $(MOD_LANDSCAPE) $(CONFIG) $(DATA_DIR)/manifest.json | $(STAMP)
	$(RUN_NB) $< -p pairs_file $(DATA_DIR)/pairs.csv

landscape: $(NB_OUT)/02_value_landscape.ipynb

all: data landscape

figures: all

# ---- tests ------------------------------------------------------------------------------------------------
test: $(STAMP)
	$(PY) -m pytest -q

smoke: $(STAMP)
	$(MAKE) --no-print-directory all PROFILE=smoke

clean:
	rm -rf build results/smoke figures/smoke

clean-venv:
	rm -rf $(VENV)
