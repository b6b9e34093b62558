#!/usr/bin/env bash
# Three members, one of them down for the whole load, etcd beside detcd in one run:
#   scripts/bench-catchup.sh [KEYS] [VALUE_BYTES]        (default 1000000 1024)
# For etcd then detcd: start 3 members, stop the third (SIGTERM), load KEYS distinct keys with
# 100 clients over 10 connections spread over the two live members (throughput, p99, p99.9,
# failed puts), then start the third again and time until it serves the last key written
# (serializable get on it, polled every 50 ms). Peak RSS of each member is printed too.
# Environment: ETCD_BIN (default etcd), CLIENTS (100), CONNS (10).
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-1000000}
vsize=${2:-1024}
clients=${CLIENTS:-100}
conns=${CONNS:-10}
etcd_bin=${ETCD_BIN:-etcd}
bash scripts/setup.sh >/dev/null
cargo build --release --quiet --bin detcd --bin detcd-bench
bench=target/release/detcd-bench
work=$(mktemp -d)
declare -A pid
cleanup() { for p in "${pid[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
initial="n1=http://127.0.0.1:47180,n2=http://127.0.0.1:47280,n3=http://127.0.0.1:47380"

start_member() { # $1 binary, $2 tag, $3 member number
  "$1" --name "n$3" --data-dir "$work/$2-n$3" \
    --listen-client-urls "http://127.0.0.1:47${3}79" --advertise-client-urls "http://127.0.0.1:47${3}79" \
    --listen-peer-urls "http://127.0.0.1:47${3}80" --initial-advertise-peer-urls "http://127.0.0.1:47${3}80" \
    --initial-cluster "$initial" --initial-cluster-token "catchup-$2" --initial-cluster-state new \
    --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) >>"$work/$2-n$3.log" 2>&1 &
  pid[$3]=$!
}

for tag in etcd detcd; do
  bin=$etcd_bin; [ "$tag" = detcd ] && bin=target/release/detcd
  for i in 1 2 3; do start_member "$bin" "$tag" "$i"; done
  until ETCDCTL_API=3 etcdctl --endpoints 127.0.0.1:47179 put __ready 1 >/dev/null 2>&1; do sleep 0.1; done
  kill -TERM "${pid[3]}"; wait "${pid[3]}" 2>/dev/null || true
  out=$("$bench" put --endpoints 127.0.0.1:47179,127.0.0.1:47279 --clients "$clients" --conns "$conns" \
    --total "$keys" --key-space "$keys" --key-size 16 --val-size "$vsize")
  last=$(printf '%016d' $(( (keys - 1) * 2654435761 % keys )))
  t0=$(date +%s.%N)
  start_member "$bin" "$tag" 3
  until ETCDCTL_API=3 etcdctl --endpoints 127.0.0.1:47379 --consistency=s get "$last" 2>/dev/null | grep -q .; do
    sleep 0.05
  done
  t1=$(date +%s.%N)
  rss=""
  for i in 1 2 3; do rss+="n$i=$(awk '/VmHWM/{print $2}' "/proc/${pid[$i]}/status")kB "; done
  for i in 1 2 3; do kill -TERM "${pid[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  size=$(du -sk "$work/$tag-n1" | cut -f1)
  echo "$tag keys=$keys value=$vsize | $(echo "$out" | tr '\n' ' ') | catch_up_s=$(echo "$t1 - $t0" | bc) peak_rss: $rss data_dir_n1_kb=$size"
  rm -rf "${work:?}"/"$tag"-n*
done
