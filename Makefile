# Both targets set themselves up: they create .venv and install the project into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STUDY ?= studies/digits.toml

.PHONY: tune test lint bench clean

# With uv when pip can install it (several times faster), else, or if uv fails, with pip alone.
# The venv starts without pip (creating it with pip takes seconds): the interpreter's own pip
# installs uv into it (`pip --python`), and uv installs pip there beside the project, so
# `.venv/bin/pip` exists either way. uv installs from the package sources pip is configured with
# (scripts/uv_install.py: a mirror, a wheel folder, constraints). The fallback puts pip in with ensurepip.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv --without-pip $(VENV)
	if $(PYTHON) -m pip --python $(PY) install --quiet uv && $(PYTHON) scripts/uv_install.py $(VENV)/bin/uv $(PY) pip -e '.[dev]'; then :; else \
	  echo "uv unavailable: installing with pip"; \
	  $(PY) -m ensurepip --upgrade --default-pip && $(PY) -m pip install --quiet --upgrade pip && $(PY) -m pip install --quiet -e '.[dev]'; \
	fi
	touch $@

tune: $(VENV)/.installed
	$(VENV)/bin/tuner run $(STUDY)

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 --dist loadgroup

# ruff (lint, import order, formatting) and mypy, as configured in pyproject.toml.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(PY) bench/bench_mlp.py

clean:
	rm -rf $(VENV) .pytest_cache
