#!/usr/bin/env bash
# Runs every check and test detcd has: formatting, clippy in both builds (real tokio and
# madsim), unit and property tests, integration tests against real processes with the real
# etcdctl, and the simulation tests. This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }
sim_env=(env RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim)

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (tokio build)"
cargo clippy --all-targets -- -D warnings

step "clippy (madsim build)"
"${sim_env[@]}" cargo clippy --all-targets -- -D warnings

step "tests (tokio build: unit, property, integration with etcdctl)"
cargo test

step "tests (madsim build)"
"${sim_env[@]}" cargo test --workspace --lib
