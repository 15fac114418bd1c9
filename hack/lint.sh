#!/usr/bin/env bash
# `make lint`: static checks that CI runs before the tests. Called by hack/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
echo ">> ruff" >&2
ruff check .
ruff format --check .
echo ">> mypy (strict, operator package)" >&2
# Exit 1 is a finding. Exit 2 is mypy crashing ("INTERNAL ERROR"), seen once in CI and never
# reproduced: show the traceback, then run once more from an empty cache; a real blocking error
# (a syntax error, say) fails the second run as well.
rc=0
mypy --show-traceback || rc=$?
if [ "$rc" = 2 ]; then
  echo ">> mypy crashed (exit 2, traceback above); once more with an empty cache" >&2
  rm -rf .mypy_cache
  mypy --show-traceback
elif [ "$rc" != 0 ]; then
  exit "$rc"
fi
echo ">> import contracts" >&2
lint-imports
echo ">> generated files are up to date" >&2
python -m kubeft_operator.api.crd --check
python hack/gen_chart_schema.py --check
