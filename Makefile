# Both targets set themselves up: they create .venv and install the project into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STUDY ?= studies/digits.toml

.PHONY: tune test bench clean

# With uv when pip can install it (several times faster), else, or if uv fails, with pip alone.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	if $(PY) -m pip install --quiet uv && $(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[dev]'; then :; else \
	  echo "uv unavailable: installing with pip"; \
	  $(PY) -m pip install --quiet --upgrade pip && $(PY) -m pip install --quiet -e '.[dev]'; \
	fi
	touch $@

tune: $(VENV)/.installed
	$(VENV)/bin/tuner run $(STUDY)

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 --dist loadgroup

bench: $(VENV)/.installed
	$(PY) bench/bench_mlp.py

clean:
	rm -rf $(VENV) .pytest_cache
