#!/usr/bin/env bash
# Runs the web UI in headless Chromium against a freshly built `coflow serve`.
# COFLOW_BIN overrides the binary (default: the debug build in $CARGO_TARGET_DIR or target/);
# CHROMIUM the browser (default: Debian's /usr/bin/chromium); COFLOW_SCREENSHOTS where the
# screenshots go (default: $CARGO_TARGET_DIR/screenshots).
set -euo pipefail
cd "$(dirname "$0")"
repo="$(cd ../.. && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
export COFLOW_BIN="${COFLOW_BIN:-$target/debug/coflow}"
export COFLOW_SCREENSHOTS="${COFLOW_SCREENSHOTS:-$target/screenshots}"
if [ ! -x "$COFLOW_BIN" ]; then
  echo "coflow binary not found at $COFLOW_BIN: run 'cargo build' first or set COFLOW_BIN" >&2
  exit 1
fi
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "chromium not found at ${CHROMIUM:-/usr/bin/chromium}: apt-get install -y chromium, or set CHROMIUM" >&2
  exit 1
fi
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
echo "screenshots: $COFLOW_SCREENSHOTS"
exec node --test
