#!/usr/bin/env bash
# Snapshots of a large store taken while writes go on, etcd beside detcd in one run, one member
# each:   scripts/bench-snapshot.sh [KEYS] [VALUE_BYTES]     (default 1000000 1024: ~1 GiB)
# For etcd then detcd: write KEYS distinct keys, start a put load (LOAD puts, default 200000,
# 100 clients over 10 connections), and once it runs take `etcdctl snapshot save`. Prints the
# save's wall time, the file's size, the member's RSS just before the save and its highest RSS
# during it (sampled every 0.1 s), and the put load's figures (the save runs inside it).
# Environment: ETCD_BIN (default etcd), LOAD, SERVERS ("etcd detcd").
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-1000000}
vsize=${2:-1024}
load=${LOAD:-200000}
servers=${SERVERS:-etcd detcd}
source scripts/lib/bench-common.sh
port=45679
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
for tag in $servers; do
  start_member "$tag" "$port" $((port + 1))
  common=(--endpoints "127.0.0.1:$port" --key-space "$keys" --key-size 16 --val-size "$vsize")
  "$bench" put "${common[@]}" --clients 100 --conns 10 --total "$keys" >/dev/null
  "$bench" put "${common[@]}" --clients 100 --conns 10 --total "$load" >"$work/puts.out" &
  loader=$!
  sleep 3
  before=$(rss_kb "$pid")
  peak=$before
  t0=$(date +%s.%N)
  etcdctl --endpoints "127.0.0.1:$port" --command-timeout=10m \
    snapshot save "$work/snap.db" >/dev/null 2>&1 &
  saver=$!
  while kill -0 "$saver" 2>/dev/null; do
    now=$(rss_kb "$pid"); [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.1
  done
  wait "$saver"
  t1=$(date +%s.%N)
  wait "$loader"
  file=$(stat -c %s "$work/snap.db")
  status=$(etcdctl snapshot status "$work/snap.db")
  stop_member
  echo "$tag keys=$keys value=$vsize | save_s=$(echo "$t1 - $t0" | bc) file_mb=$((file / 1000000)) status=[$status] rss_before_mb=$((before / 1024)) rss_peak_during_save_mb=$((peak / 1024)) | puts: $(tr '\n' ' ' <"$work/puts.out")"
  rm -rf "${work:?}/$tag" "$work/snap.db"
done
