#!/usr/bin/env bash
# Runs the jsforce conformance tests against a freshly built `coflow sandbox`.
# COFLOW_BIN overrides the binary; by default the debug build in $CARGO_TARGET_DIR (or target/).
set -euo pipefail
cd "$(dirname "$0")"
repo="$(cd ../../.. && pwd)"
export COFLOW_BIN="${COFLOW_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/coflow}"
if [ ! -x "$COFLOW_BIN" ]; then
  echo "coflow binary not found at $COFLOW_BIN: run 'cargo build' first or set COFLOW_BIN" >&2
  exit 1
fi
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
exec node --test
