# Recipes for working on srtk (https://just.systems). Each installs what it needs into .venv first.

# Run srtk end to end on bundled photographs
demo:
    bash .ci/setup && .venv/bin/srtk demo

# The full test suite (what CI runs)
test:
    bash .ci/run

# Fast tests only (skips the slow end-to-end ones)
test-fast:
    bash .ci/setup && .venv/bin/python -m pytest -q -m "not slow"

# Speed benchmarks (ratios against a baseline in the same run)
bench:
    bash .ci/setup && for script in benchmarks/*.py; do .venv/bin/python "$script"; done

# Lint and format check
lint:
    bash .ci/setup && .venv/bin/ruff check srtk tests benchmarks && .venv/bin/ruff format --check srtk tests benchmarks && .venv/bin/lint-imports
