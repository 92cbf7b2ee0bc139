# runtime-mcp: `make test` runs ruff and the whole suite on every CPython from
# 3.10 to 3.13; `make demo` runs the product's main job. Both set up their own
# virtualenvs under .venvs/ from the interpreters pyenv (or PATH) provides.

PY_VERSIONS ?= 3.10 3.11 3.12 3.13
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
VENVS := .venvs
LINT_PY ?= 3.11
PYTEST_ARGS ?=

# The newest pyenv build of a minor version, else pythonX.Y on PATH.
python_for = $(or $(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python))),$(shell command -v python$(1)))

.PHONY: test lint demo bench venvs clean $(addprefix test-,$(PY_VERSIONS))

# The demo is part of the test run: it is the product's main job.
test: lint $(addprefix test-,$(PY_VERSIONS)) demo

lint: $(VENVS)/$(LINT_PY)/.ready
	$(VENVS)/$(LINT_PY)/bin/ruff check .
	$(VENVS)/$(LINT_PY)/bin/ruff format --check .

# Explicit rules per version: make skips pattern rules for .PHONY targets.
define test_rule
test-$(1): $(VENVS)/$(1)/.ready
	@echo "=== tests on Python $(1) ==="
	$(VENVS)/$(1)/bin/python -m pytest -q $(PYTEST_ARGS)
endef
$(foreach v,$(PY_VERSIONS),$(eval $(call test_rule,$(v))))

venvs: $(addsuffix /.ready,$(addprefix $(VENVS)/,$(PY_VERSIONS)))

$(VENVS)/%/.ready: pyproject.toml agent/pyproject.toml
	@py="$(call python_for,$*)"; \
	if [ -z "$$py" ]; then echo "error: no Python $* found (looked in $(PYENV_ROOT)/versions and PATH); install it with 'pyenv install $*'" >&2; exit 1; fi; \
	rm -rf $(VENVS)/$*; \
	"$$py" -m venv $(VENVS)/$* && \
	$(VENVS)/$*/bin/python -m pip install -q --upgrade pip && \
	$(VENVS)/$*/bin/python -m pip install -q -e ./agent -e '.[dev]' && \
	touch $@

demo: $(VENVS)/3.12/.ready
	$(VENVS)/3.12/bin/python examples/demo.py

bench: venvs
	@for v in $(PY_VERSIONS); do $(VENVS)/$$v/bin/python benchmarks/bench_engine.py || exit 1; done

clean:
	rm -rf $(VENVS)
