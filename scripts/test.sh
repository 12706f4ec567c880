#!/usr/bin/env bash
# One command from a fresh clone to the whole test suite: install what the tests need, build,
# lint (ESLint, knip, Prettier), run every test file with node's test runner
# (scripts/run-tests.sh; its summary lines are what CI reads).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-test-deps
npm run --silent lint
exec bash scripts/run-tests.sh
