# The two commands README.md promises: `make demo` and `make test`.
.PHONY: setup demo test lint bench

setup:
	bash scripts/install.sh

demo: setup
	mkdir -p out
	.venv/bin/livedub sample -o out/sample.mp4
	.venv/bin/livedub dub out/sample.mp4 --to es -o out/sample.es.mp4

test: setup
	bash scripts/install_ops_tools.sh
	.venv/bin/ruff check .
	.venv/bin/python -m pytest

bench: setup
	.venv/bin/livedub bench --out bench
