.PHONY: setup demo test lint bench
PY := .venv/bin/python

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	$(PY) -m ruff check autoscaler scalers provisioner tests bench conftest.py
	$(PY) -m mypy
	$(PY) -m pytest --compat-report=docs/compatibility-counts.json

lint: setup
	$(PY) -m ruff check autoscaler scalers provisioner tests bench conftest.py
	$(PY) -m mypy

bench: setup
	$(PY) bench/scalers.py
	$(PY) bench/engine.py
	$(PY) bench/packing.py
	$(PY) bench/reaction.py
	$(PY) bench/simulate.py
	$(PY) bench/operator_scale.py
	$(PY) bench/http.py
	$(PY) bench/provision.py
	$(PY) bench/cost.py
	$(PY) bench/fuzz.py
