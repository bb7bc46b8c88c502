.PHONY: demo test setup setup-dev lint bench

# Install everything and run the demo (server + production "demo" fed by test sources).
demo: setup
	.venv/bin/scenecloud demo

# Install everything (incl. test tools) and run every test, slow end-to-end ones included.
test: setup-dev
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q -m "slow or not slow"

setup:
	scripts/setup.sh

setup-dev:
	scripts/setup.sh --dev

lint: setup-dev
	.venv/bin/ruff check .

bench: setup-dev
	.venv/bin/python -m benchmarks.run_all
