#!/usr/bin/env bash
# The whole test suite: set-up, then every test (network tests run in throwaway lt-* namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc --noEmit -p .
exec npx vitest run "$@"
