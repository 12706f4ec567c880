#!/usr/bin/env bash
# One command from a fresh clone to a running Ferry: install, build, start the server with its
# embedded hosted agent (SQLite and HTTPS, data in ./ferry-data). Extra arguments go to `ferry server`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
FERRY_CLI_HINT=./ferry exec node packages/cli/bundle/main.js server "$@"
