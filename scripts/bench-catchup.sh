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
source scripts/lib/bench-common.sh
initial="n1=http://127.0.0.1:47180,n2=http://127.0.0.1:47280,n3=http://127.0.0.1:47380"
declare -A member
start() { # $1 tag, $2 member number
  launch "$1" "$1-n$2" "n$2" "47${2}79" "47${2}80" "$initial"
  member[$2]=$launched
}

for tag in etcd detcd; do
  for i in 1 2 3; do start "$tag" "$i"; done
  wait_serving 47179
  stop_member "${member[3]}"
  out=$("$bench" put --endpoints 127.0.0.1:47179,127.0.0.1:47279 --clients "$clients" --conns "$conns" \
    --total "$keys" --key-space "$keys" --key-size 16 --val-size "$vsize")
  start "$tag" 3
  catch_up=$(first_read_s 47379 "$(last_key "$keys" "$keys")")
  rss=""
  for i in 1 2 3; do rss+="n$i=$(awk '/VmHWM/{print $2}' "/proc/${member[$i]}/status")kB "; done
  for i in 1 2 3; do stop_member "${member[$i]}"; done
  size=$(du -sk "$work/$tag-n1" | cut -f1)
  echo "$tag keys=$keys value=$vsize | $(echo "$out" | tr '\n' ' ') | catch_up_s=$catch_up peak_rss: $rss data_dir_n1_kb=$size"
  rm -rf "${work:?}"/"$tag"-n*
done
