#!/usr/bin/env bash
# `make lint`: static checks that CI runs before the tests. Called by hack/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
echo ">> ruff" >&2
ruff check .
ruff format --check .
echo ">> mypy (strict: operator, trainer, hack, benchmarks, test fixtures)" >&2
mypy --show-traceback
echo ">> import contracts" >&2
lint-imports
echo ">> generated files are up to date" >&2
python -m kubeft_operator.api.crd --check
python hack/gen_chart_schema.py --check
