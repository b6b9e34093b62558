#!/usr/bin/env bash
# A new member joining a loaded cluster, detcd beside etcd on this machine, same client, same
# run: one member loaded with KEYS distinct keys of 1 KiB values (default 200 000, about
# 250 MB), then `member add` and a second member started with an empty data dir and the
# printed ETCD_* values; the time from starting it until it serves the last key written
# (serializable read), and its peak RSS.
#   scripts/bench-join.sh [ROUNDS]    (default 1; each figure printed)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
keys=${KEYS:-200000}
source scripts/lib/bench-common.sh

measure() { # $1 tag
  local tag=$1 data="$1-$round"
  launch "$tag" "$data-a" a 46379 46380 a=http://127.0.0.1:46380
  local first=$launched
  wait_serving 46379
  "$bench" put --endpoints 127.0.0.1:46379 --conns 4 --clients 64 --total "$keys" \
    --key-space "$keys" --val-size 1024 >/dev/null
  etcdctl --endpoints 127.0.0.1:46379 put __last x >/dev/null
  local added
  added=$(etcdctl --endpoints 127.0.0.1:46379 member add b --peer-urls=http://127.0.0.1:46390)
  local t0 t1
  t0=$(date +%s.%N)
  env $(echo "$added" | grep '^ETCD_' | tr -d '"') "$(server_bin "$tag")" \
    --data-dir "$work/$data-b" --initial-cluster-token "bench-$tag" \
    --listen-client-urls http://127.0.0.1:46389 --advertise-client-urls http://127.0.0.1:46389 \
    --listen-peer-urls http://127.0.0.1:46390 \
    --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) >>"$work/$data-b.log" 2>&1 &
  local second=$!
  until etcdctl --endpoints 127.0.0.1:46389 --consistency=s get __last 2>/dev/null | grep -q x; do
    sleep 0.05
  done
  t1=$(date +%s.%N)
  local rss
  rss=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$second/status")
  echo "$tag round $round: $keys keys, data $(du -sh "$work/$data-a" | cut -f1);" \
    "new member serving the last key after $(echo "$t1 - $t0" | bc) s, peak RSS ${rss} MB"
  stop_member "$second"
  stop_member "$first"
  rm -rf "${work:?}/$data-a" "${work:?}/$data-b"
}

for round in $(seq 1 "$rounds"); do
  measure etcd
  measure detcd
done
