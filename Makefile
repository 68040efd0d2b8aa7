.PHONY: install repro test lint bench

install:
	python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e '.[dev]'

repro:
	.venv/bin/dvc repro

test:
	.venv/bin/ruff check . && .venv/bin/pytest

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

# A set in Omniglot layout: make bench DATA=path/to/images_background
DATA ?= ../shared/omniglot/images_background
bench:
	@test -d "$(DATA)" || { echo "make bench: $(DATA) is not a folder; run make bench DATA=<a set in Omniglot layout>" >&2; exit 2; }
	.venv/bin/python benchmarks/train_speed.py "$(DATA)"
