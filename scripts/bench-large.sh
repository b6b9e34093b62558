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
source scripts/lib/bench-common.sh

for r in $(seq 1 "$rounds"); do
  for tag in etcd detcd; do
    start_member "$tag" 45379 45380
    out=$("$bench" put --endpoints 127.0.0.1:45379 --clients "$clients" --conns "$conns" \
      --total $((keys * passes)) --key-space "$keys" --key-size 16 --val-size "$vsize")
    rss=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
    last=$(last_key $((keys * passes)) "$keys")
    stop_member
    size=$(du -sk "$work/$tag" | cut -f1)
    launch "$tag" "$tag" n1 45379 45380 n1=http://127.0.0.1:45380
    pid=$launched
    restart=$(first_read_s 45379 "$last")
    rss_after=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
    stop_member
    echo "round=$r $tag keys=$keys passes=$passes value=$vsize | $(echo "$out" | tr '\n' ' ') | peak_rss_kb=$rss data_dir_kb=$size restart_s=$restart rss_after_restart_kb=$rss_after"
    rm -rf "${work:?}/$tag"
  done
done
