#!/usr/bin/env bash
# Mutation testing (cargo-mutants) of what the security rules stand on: the card core
# (token-sim/src/piv), its store (token-sim/src/store) and the driver's PIV client
# (host-driver/src/piv.rs). Each mutant must be caught by the tests of its own crate.
# Not in CI: hours on 2 cores. Reports in target/mutants-*/mutants.out (caught.txt,
# missed.txt, timeout.txt, unviable.txt). Extra arguments go to cargo mutants, e.g.
#   scripts/mutants.sh --file token-sim/src/piv/exec.rs      # one file
#   scripts/mutants.sh --in-diff <(git diff main)             # only what a change touched
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked
# The crash test's SIGKILL rounds: fewer per mutant, still enough to see a lost decrement.
export UKEY_CRASH_ROUNDS="${UKEY_CRASH_ROUNDS:-60}"
only_driver=false
[ "${1:-}" = "--driver-only" ] && { only_driver=true; shift; }
if ! $only_driver; then
  cargo mutants -p token-sim --file 'token-sim/src/piv/*.rs' --file 'token-sim/src/store/*.rs' \
    --output target/mutants-token-sim --timeout 120 "$@" || true
fi
cargo mutants -p host-driver --file host-driver/src/piv.rs --output target/mutants-host-driver --timeout 120 "$@" || true
for d in target/mutants-token-sim target/mutants-host-driver; do
  [ -d "$d/mutants.out" ] || continue
  caught=$(wc -l < "$d/mutants.out/caught.txt"); missed=$(wc -l < "$d/mutants.out/missed.txt")
  timeout=$(wc -l < "$d/mutants.out/timeout.txt"); unviable=$(wc -l < "$d/mutants.out/unviable.txt")
  viable=$((caught + missed + timeout))
  echo "$d: $caught caught, $timeout timed out (counted as caught), $missed missed, $unviable unviable;" \
    "score $(( (caught + timeout) * 100 / (viable > 0 ? viable : 1) ))% of $viable viable"
done
