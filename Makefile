# Every target installs what it needs into .venv first, so a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision wheels of this size are cached locally on the project's machines; pip takes them from there.
TORCH := "torch>=2.2,<=2.14.1" "torchvision>=0.17,<=0.29.1"

.PHONY: demo test bench bench-all fuzz lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev,dask]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/medaudit demo --out demo-report

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

# Benchmarks read real images from a data folder: `make bench DATA=DIR` (or MEDAUDIT_DATA set);
# `medaudit data check DIR` verifies one and says where to obtain each dataset.
DATA := $(or $(DATA),$(MEDAUDIT_DATA))
EXTERNAL := $(or $(EXTERNAL),$(MEDAUDIT_EXTERNAL))
ifneq ($(DATA),)
export MEDAUDIT_DATA := $(DATA)
endif

# The leaderboard (quick profile, about 25 minutes on 2 cores) and scan throughput, local vs dask.
bench: $(VENV)/.installed
	@test -n "$(DATA)" || { echo "give DATA=DIR (a folder with cxr_kermany/, ct_lung_tcia/, derm_isic/)"; exit 2; }
	$(BIN)/medaudit bench run --profile quick --write-docs docs/BENCHMARKS.md
	$(BIN)/medaudit bench scan-speed -n 400 --analyzers metadata --engines local,dask --write-docs docs/BENCHMARKS.md
	$(BIN)/medaudit bench scan-speed -n 200 --size 256 --analyzers all --engines local,dask --write-docs docs/BENCHMARKS.md

# Everything else that has a section in docs/BENCHMARKS.md (about 40 more minutes on 2 cores; with EXTERNAL=DIR, the
# third-party folder, about 8 more).
bench-all: bench
	$(BIN)/medaudit bench detectors --write-docs docs/BENCHMARKS.md
	$(BIN)/medaudit bench generators -n 200 --write-docs docs/BENCHMARKS.md
	$(BIN)/medaudit bench watermark -n 100 --generators 60 --write-docs docs/BENCHMARKS.md
	$(BIN)/medaudit bench reuse --write-docs docs/BENCHMARKS.md
	$(BIN)/medaudit bench tamper --write-docs docs/BENCHMARKS.md
	$(BIN)/medaudit bench screen --write-docs docs/BENCHMARKS.md
ifneq ($(EXTERNAL),)
	$(BIN)/medaudit bench third-party --external $(EXTERNAL) --write-docs docs/BENCHMARKS.md
endif

# Hardening figures of docs/RELIABILITY.md (about 50 minutes on 2 cores).
fuzz: $(VENV)/.installed
	$(BIN)/python -m benchmarks.fuzz --seconds 600 --kill-resume 20 --kill-resume-screen 20 --kill-audit 20
	$(BIN)/python -m benchmarks.fuzz --seconds 600 --target index --concurrent-index 20
	$(BIN)/python -m benchmarks.fuzz --seconds 600 --target screen

lint: $(VENV)/.installed
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo-report build *.egg-info
