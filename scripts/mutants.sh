#!/usr/bin/env bash
# Mutation testing (cargo-mutants) of what the security rules stand on: the card core
# (token-sim/src/piv), its store (token-sim/src/store) and the driver's PIV client
# (host-driver/src/piv.rs). Each mutant must be caught by the tests of its own crate.
# Not in CI: too slow for 2 cores. Mutants are made in place (`--in-place`: the tree's own
# target/ stays warm, so a mutant costs seconds of build, not a cold build of a copy), so
# commit or stash first; cargo mutants puts every file back, also when stopped with Ctrl-C.
# token-sim takes ~30 min (527 mutants), host-driver's piv.rs ~8 min. Reports in target/mutants-*/mutants.out (caught.txt,
# missed.txt, timeout.txt, unviable.txt). Extra arguments go to cargo mutants, e.g.
#   scripts/mutants.sh --file token-sim/src/piv/exec.rs      # one file
#   scripts/mutants.sh --in-diff <(git diff main)             # only what a change touched
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked
# The crash test's SIGKILL rounds: fewer per mutant, still enough to see a lost decrement.
export UKEY_CRASH_ROUNDS="${UKEY_CRASH_ROUNDS:-60}"
# cargo mutants makes its output directory but not the parents (a fresh clone has no target/).
mkdir -p target
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "scripts/mutants.sh edits sources in place: commit or stash your changes first" >&2
  exit 2
fi
# cargo mutants exits 0 (all caught), 2 (some missed) or 3 (some timed out); anything else
# (a broken baseline, a build failure) stops here.
run() {
  local rc=0
  cargo mutants --in-place --timeout 120 "$@" || rc=$?
  case $rc in 0|2|3) ;; *) echo "cargo mutants failed ($rc)" >&2; exit "$rc" ;; esac
}
only_driver=false
[ "${1:-}" = "--driver-only" ] && { only_driver=true; shift; }
if ! $only_driver; then
  run -p token-sim --file 'token-sim/src/piv/*.rs' --file 'token-sim/src/store/*.rs' --output target/mutants-token-sim "$@"
fi
run -p host-driver --file host-driver/src/piv.rs --output target/mutants-host-driver "$@"
for d in target/mutants-token-sim target/mutants-host-driver; do
  [ -d "$d/mutants.out" ] || continue
  count() { [ -f "$d/mutants.out/$1.txt" ] && wc -l < "$d/mutants.out/$1.txt" || echo 0; }
  caught=$(count caught); missed=$(count missed); timeout=$(count timeout); unviable=$(count unviable)
  tested=$((caught + missed + timeout))
  echo "$d: $caught caught, $missed missed, $timeout timed out, $unviable unviable;" \
    "score $((caught * 100 / (tested > 0 ? tested : 1)))% caught of $tested tested (timeouts not counted as caught)"
done
