#!/usr/bin/env bash
# The whole test suite: what .ci/run calls and what README tells developers to run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v openssl >/dev/null 2>&1; then
  echo "== installing openssl (the signature judge)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq openssl >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq openssl >/dev/null; fi
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets -- -D warnings
echo "== no_std build of proto and the card core"
cargo build -p proto --no-default-features
cargo build -p token-sim --no-default-features
echo "== tests"
cargo test --workspace
