#!/usr/bin/env bash
# Runs every check and test detcd has: formatting, clippy in both builds (real tokio and
# madsim), unit and property tests, integration tests against real processes with the real
# etcdctl and the real etcd, and the deterministic simulation (tests and 200+ seeds).
# This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }
sim_env=(env RUSTFLAGS="--cfg madsim" RUSTDOCFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim)

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (tokio build)"
cargo clippy --all-targets -- -D warnings

step "clippy (madsim build)"
"${sim_env[@]}" cargo clippy --workspace --all-targets -- -D warnings

step "tests (tokio build: unit, property, integration with etcdctl)"
cargo test

step "tests (madsim build, release: unit tests, determinism, injected bugs, regression seeds)"
"${sim_env[@]}" cargo test --workspace --release

step "simulation: 1,000 seeds, then a determinism check (each seed run twice)"
# 1,000 seeds: 1..1001 less the one undecided seed there (sim/undecided.txt).
bash scripts/sim.sh --seeds 1..1001 --skip sim/undecided.txt
bash scripts/sim.sh --seeds 1001..1030 --check-determinism --skip sim/undecided.txt

step "simulation: 200 seeds with an 8 KiB quota (NOSPACE raised, refused, compacted, disarmed)"
bash scripts/sim.sh --seeds 2001..2200 --quota 8192
