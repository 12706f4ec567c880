#!/usr/bin/env bash
# Runs the test files with Node's test runner, nothing else (no install, build or lint): the
# last step of scripts/test.sh, and `npm run test:only`. Its summary lines are what CI reads.
# With arguments, runs just those files: `npm run test:only -- packages/protocol/test/frames.test.ts`.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob globstar
if [ $# -gt 0 ]; then
  files=("$@")
else
  # Unit tests, then the conventions the tree must keep, then end to end.
  files=(packages/*/test/**/*.test.ts test/conventions/*.test.ts test/e2e/*.test.ts test/e2e/web/*.test.ts test/e2e/web-admin/*.test.ts)
fi
# No --test-force-exit: it ends a file's process before all of its results reach the runner
# (seen here: a run reported 701 tests where the same tree has 711), which could hide a failure.
exec node --import tsx --test --test-concurrency=2 "${files[@]}"
