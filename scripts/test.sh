#!/usr/bin/env bash
# One command from a fresh clone to the whole test suite: install what the tests need, build,
# lint, run every test file with node's test runner (its summary lines are what CI reads).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-test-deps
npx eslint --max-warnings=0 .
shopt -s nullglob
files=(packages/*/test/*.test.ts test/e2e/*.test.ts)
exec node --import tsx --test --test-concurrency=2 "${files[@]}"
