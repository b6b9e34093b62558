#!/usr/bin/env bash
# Runs detcd's deterministic simulation seeds (release build of the madsim configuration).
#   scripts/sim.sh --seeds 1..200            run a range on both cores
#   scripts/sim.sh --seed 42                 replay one seed bit for bit
#   scripts/sim.sh --seed 42 --verbose       ...and print its fault trace
#   scripts/sim.sh --seeds 1..50 --check-determinism
#   scripts/sim.sh --seeds 1..20 --inject-bug stale-read
#   scripts/sim.sh --seeds 1..200 --quota 8192  members with a tiny --quota-backend-bytes,
#                                            an operator compacting and disarming NOSPACE
#   scripts/sim.sh --long [N]                a long run: seeds 1..N (default 10,000)
# The last line for each seed is `seed N: ok trace=<hash>` or `seed N: FAILED trace=<hash>`,
# preceded on failure by the violations and the one-line replay command.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg madsim"
export CARGO_TARGET_DIR=target/sim
cargo build --release --quiet -p detcd-sim --bin detcd-sim
if [ "${1:-}" = "--long" ]; then
  last="${2:-10000}"
  exec target/sim/release/detcd-sim --seeds "1..$last"
fi
exec target/sim/release/detcd-sim "$@"
