# The two commands README.md promises: `make demo` and `make test`.
.PHONY: setup setup-all demo test lint bench up down

# the embedded default (no torch): all `make demo` needs
setup:
	bash scripts/install.sh

# everything the whole test suite needs: the model layer (torch, transformers, Optimum), helm,
# promtool, the Kubernetes schemas, the Kafka stack, the LiveKit meeting server, the call page's
# JavaScript and Chromium
setup-all:
	bash scripts/install.sh --models
	bash scripts/install_ops_tools.sh
	bash scripts/install_kafka.sh
	bash scripts/install_livekit.sh
	bash scripts/install_web.sh --browser

demo: setup
	mkdir -p out
	.venv/bin/livedub sample -o out/sample.mp4
	.venv/bin/livedub dub out/sample.mp4 --to es -o out/sample.es.mp4

test: setup-all
	.venv/bin/ruff check .
	bash .ci/schema-compat.sh
	.venv/bin/python -m pytest

lint: setup
	.venv/bin/ruff check .

bench: setup-all
	.venv/bin/livedub bench --out bench --transport kafka

up: setup-all
	deploy/local/livedub-local.sh up

down:
	deploy/local/livedub-local.sh down
