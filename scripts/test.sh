#!/usr/bin/env bash
# Sets up everything the tests need (system packages incl. rsyslog, squid, nftables;
# Node 24; npm deps), type-checks, and runs the whole test suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_BIN="$(AIRLOCK_TEST_DEPS=1 bash "$ROOT/scripts/setup.sh" | tail -1)"
export PATH="$NODE_BIN:$PATH"
cd "$ROOT"
echo "[test] node $(node --version), $(bwrap --version)"
npx --no-install tsc -p tsconfig.json
echo "[test] type-check ok"
node node_modules/.bin/depcruise src --config .dependency-cruiser.cjs
echo "[test] module boundaries ok"
node node_modules/.bin/knip --no-progress
echo "[test] no unused files, exports or dependencies (knip)"
node node_modules/.bin/prettier --check .
echo "[test] formatting ok (prettier; fix with: npm run format)"
node node_modules/.bin/eslint src test bench scripts
echo "[test] lint ok"
exec node --test --test-concurrency=1 --test-timeout=900000 --test-global-setup=test/global-hooks.ts 'test/**/*.test.ts'
