#!/usr/bin/env bash
# Large-data benchmark, etcd beside detcd in one run, one member each:
#   scripts/bench-large.sh [KEYS] [VALUE_BYTES] [ROUNDS]   (default 1000000 1024 1)
# Each round, for etcd then detcd: load KEYS distinct keys of VALUE_BYTES with 100 clients over
# 10 connections (throughput, p99, p99.9, failed puts), then peak RSS and data-dir size, then
# a restart: SIGTERM, start again, time until the first read of the last key is served.
# Environment: ETCD_BIN (default etcd), CLIENTS (100), CONNS (10), PASSES (1: each key written
# PASSES times, so PASSES-1 older revisions of every key stay in the history).
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-1000000}
vsize=${2:-1024}
rounds=${3:-1}
clients=${CLIENTS:-100}
conns=${CONNS:-10}
passes=${PASSES:-1}
etcd_bin=${ETCD_BIN:-etcd}
bash scripts/setup.sh >/dev/null
cargo build --release --quiet --bin detcd --bin detcd-bench
bench=target/release/detcd-bench
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

start() { # $1 binary, $2 tag
  # etcd's recommended maximum quota for both, so neither refuses the load with NOSPACE.
  local extra=(--quota-backend-bytes $((8 * 1024 * 1024 * 1024)))
  "$1" --name n1 --data-dir "$work/$2" \
    --listen-client-urls http://127.0.0.1:45379 --advertise-client-urls http://127.0.0.1:45379 \
    --listen-peer-urls http://127.0.0.1:45380 --initial-advertise-peer-urls http://127.0.0.1:45380 \
    --initial-cluster n1=http://127.0.0.1:45380 --initial-cluster-token "large-$2" \
    --initial-cluster-state new "${extra[@]}" >>"$work/$2.log" 2>&1 &
  pid=$!
}
wait_read() { # $1 key: waits until it is served; prints seconds waited
  local t0 t1
  t0=$(date +%s.%N)
  until ETCDCTL_API=3 etcdctl --endpoints 127.0.0.1:45379 --consistency=s get "$1" 2>/dev/null | grep -q .; do
    sleep 0.05
  done
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

for r in $(seq 1 "$rounds"); do
  for tag in etcd detcd; do
    bin=$etcd_bin; [ "$tag" = detcd ] && bin=target/release/detcd
    start "$bin" "$tag"
    until ETCDCTL_API=3 etcdctl --endpoints 127.0.0.1:45379 put __ready 1 >/dev/null 2>&1; do sleep 0.1; done
    out=$("$bench" put --endpoints 127.0.0.1:45379 --clients "$clients" --conns "$conns" \
      --total $((keys * passes)) --key-space "$keys" --key-size 16 --val-size "$vsize")
    rss=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
    last=$(printf '%016d' $(( (keys * passes - 1) * 2654435761 % keys )))
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    size=$(du -sk "$work/$tag" | cut -f1)
    t0=$(date +%s.%N)
    start "$bin" "$tag"
    wait_read "$last" >/dev/null
    t1=$(date +%s.%N)
    restart=$(echo "$t1 - $t0" | bc)
    rss_after=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    pid=
    echo "round=$r $tag keys=$keys passes=$passes value=$vsize | $(echo "$out" | tr '\n' ' ') | peak_rss_kb=$rss data_dir_kb=$size restart_s=$restart rss_after_restart_kb=$rss_after"
    rm -rf "${work:?}/$tag"
  done
done
