# Set-up and everyday commands. Every target creates .venv on first use and installs what it needs.
# PyTorch: the CPU wheel torch==2.13.0 is installed first, so that pip never pulls a CUDA build.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH_SPEC ?= torch==2.13.0
THREADS ?= 2

.PHONY: demo demo-quick test test-all docs docs-quick test-docs bench bench-scale bench-env gpu-wheels browser clean

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH_SPEC)"
	touch $@

$(VENV)/.installed-test: $(VENV)/.torch pyproject.toml
	$(PIP) install --quiet -e ".[test,all]"
	touch $@

$(VENV)/.installed-docs: $(VENV)/.torch pyproject.toml
	$(PIP) install --quiet -e ".[test,all,docs]"
	touch $@

$(VENV)/.installed-demo: $(VENV)/.torch pyproject.toml
	$(PIP) install --quiet -e ".[demo]"
	touch $@

demo: $(VENV)/.installed-demo
	OMP_NUM_THREADS=$(THREADS) $(VENV)/bin/xcebra demo --out demo_out

demo-quick: $(VENV)/.installed-demo
	OMP_NUM_THREADS=$(THREADS) $(VENV)/bin/xcebra demo --quick --out demo_out

# The report test opens the demo report in headless Chromium; it is installed from Debian's packages
# when we can (root with apt-get), otherwise that one test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	      echo "installing chromium (Debian package) for the report browser test"; \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	    else echo "chromium not found and cannot be installed here: the browser test will be skipped"; fi; }

test: $(VENV)/.installed-test browser
	$(PY) -m pytest -q

test-all: $(VENV)/.installed-test browser
	$(PY) -m pytest -q -m "slow or not slow"

# The documentation site (Sphinx) -> docs/_build/html; warnings are errors. `docs` executes the gallery's
# examples with their full fits; `docs-quick` with shorter ones (XCEBRA_DOCS_QUICK=1), as CI does.
SPHINX := $(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

docs: $(VENV)/.installed-docs
	OMP_NUM_THREADS=$(THREADS) $(SPHINX)

docs-quick: $(VENV)/.installed-docs
	XCEBRA_DOCS_QUICK=1 OMP_NUM_THREADS=$(THREADS) $(SPHINX)

# Opens the built site in headless Chromium (fails if the site has not been built; skips without Chromium).
test-docs: $(VENV)/.installed-docs browser
	XCEBRA_DOCS_BUILT=1 $(PY) -m pytest -q tests/test_docs.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build docs/generated docs/auto_examples

# A separate environment with the reference package, used only by benchmarks that compare against it.
BENCH_VENV ?= .venv-bench
bench-env: $(BENCH_VENV)/.installed
$(BENCH_VENV)/.installed:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BENCH_VENV)/bin/python -m pip install --quiet "cebra==0.6.1" cvxpy captum
	$(BENCH_VENV)/bin/python -c "import cebra.attribution"
	touch $@

# Benchmarks are modules of the benchmarks package, run from the repository root (index: benchmarks/README.md).
bench: $(VENV)/.installed-test
	OMP_NUM_THREADS=$(THREADS) $(PY) -m benchmarks.speed.speed --out benchmarks/results

bench-scale: $(VENV)/.installed-test
	OMP_NUM_THREADS=$(THREADS) $(PY) -m benchmarks.scale.scale --workers $(THREADS) --out benchmarks/results

# Wheels that the GPU machine's image lacks (it reaches no registry; it has torch, numpy, scipy, scikit-learn,
# matplotlib, safetensors, pytest): the reference package and what it imports, for its Python 3.12.
# Carried as .whl (git ignores it); benchmarks/README.md, "On a GPU", has the command that runs there.
GPU_WHEELS = cebra==0.6.1 literate-dataclasses==0.0.6 captum==0.9.0 cvxpy==1.9.3 qdldl==0.1.9.post1 sparsediffpy==0.6.1
gpu-wheels:
	rm -rf .whl && mkdir -p .whl
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
		--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)
	du -sh .whl
