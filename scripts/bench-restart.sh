#!/usr/bin/env bash
# Restart time with a full log, detcd beside etcd on this machine, same client, same run:
# one member each, ENTRIES puts (default 100 000) with no snapshot in between, a clean stop
# (SIGTERM), then the time from starting the process again to its first served serializable read
# of the last key written. Also kill -9 under no load, same measure.
#   scripts/bench-restart.sh [ROUNDS]    (default 3, alternating; each figure printed)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
entries=${ENTRIES:-100000}
etcd_bin=${ETCD_BIN:-etcd}
bash scripts/setup.sh
cargo build --release --quiet --bin detcd --bin detcd-bench
bench=target/release/detcd-bench
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export ETCDCTL_API=3

start() { # $1 binary, $2 data dir
  "$1" --name n1 --data-dir "$2" --snapshot-count $((entries * 2)) \
    --listen-client-urls http://127.0.0.1:45379 --advertise-client-urls http://127.0.0.1:45379 \
    --listen-peer-urls http://127.0.0.1:45380 --initial-advertise-peer-urls http://127.0.0.1:45380 \
    --initial-cluster n1=http://127.0.0.1:45380 >>"$2.log" 2>&1 &
  pid=$!
}

first_read_ms() { # ms from now until a serializable read answers
  local t0 t1
  t0=$(date +%s%N)
  until etcdctl --endpoints 127.0.0.1:45379 --dial-timeout=200ms --command-timeout=500ms \
      get --consistency=s __last >/dev/null 2>&1; do sleep 0.01; done
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}

measure() { # $1 binary, $2 tag
  local dir="$work/$2-$round"
  start "$1" "$dir"
  first_read_ms >/dev/null
  "$bench" put --endpoints 127.0.0.1:45379 --conns 4 --clients 32 --total "$entries" >/dev/null
  etcdctl --endpoints 127.0.0.1:45379 put __last x >/dev/null
  kill -TERM "$pid"; wait "$pid" || true
  start "$1" "$dir"
  local clean; clean=$(first_read_ms)
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true
  start "$1" "$dir"
  local killed; killed=$(first_read_ms)
  kill -TERM "$pid"; wait "$pid" || true; pid=""
  echo "$2 round $round: restart after SIGTERM ${clean} ms, after kill -9 ${killed} ms, data dir $(du -sh "$dir" | cut -f1)"
  rm -rf "$dir"
}

for round in $(seq 1 "$rounds"); do
  measure "$etcd_bin" etcd
  measure target/release/detcd detcd
done
