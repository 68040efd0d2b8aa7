.PHONY: install repro test lint bench

install:
	python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'

repro:
	.venv/bin/dvc repro

test:
	.venv/bin/ruff check . && .venv/bin/pytest

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench:
	.venv/bin/python benchmarks/train_speed.py ../shared/omniglot/images_background
