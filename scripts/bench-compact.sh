#!/usr/bin/env bash
# Compaction under load, etcd beside detcd in one run, one member each:
#   scripts/bench-compact.sh [KEYS] [PASSES] [VALUE_BYTES]     (default 100000 5 1024)
# For etcd then detcd: write KEYS distinct keys PASSES times (so (PASSES-1) x KEYS old revisions
# wait for compaction), then start a put load (LOAD puts, default 200000, 100 clients over 10
# connections) and, 3 s into it, `compaction --physical` at the revision before the load. Prints
# the load's throughput and latency percentiles (the whole load, compaction included), how long
# the physical compaction took (both answer once the old revisions are gone from the backend),
# the server's CPU time (user + system) during the load, and the data dir size after.
# Environment: ETCD_BIN (default etcd), LOAD (200000), CLIENTS (100), CONNS (10), SERVERS
# ("etcd detcd"), COMPACT (1; 0 runs the same load without compacting, as a baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-100000}
passes=${2:-5}
vsize=${3:-1024}
load=${LOAD:-200000}
clients=${CLIENTS:-100}
conns=${CONNS:-10}
servers=${SERVERS:-etcd detcd}
compact=${COMPACT:-1}
source scripts/lib/bench-common.sh
ctl() { etcdctl --endpoints 127.0.0.1:45479 "$@"; }
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }

for tag in $servers; do
  start_member "$tag" 45479 45480
  "$bench" put --endpoints 127.0.0.1:45479 --clients "$clients" --conns "$conns" \
    --total $((keys * passes)) --key-space "$keys" --key-size 16 --val-size "$vsize" >/dev/null
  rev=$(ctl endpoint status -w json | grep -o '"revision":[0-9]*' | head -1 | cut -d: -f2)
  cpu0=$(cpu_ticks "$pid")
  "$bench" put --endpoints 127.0.0.1:45479 --clients "$clients" --conns "$conns" \
    --total "$load" --key-space "$keys" --key-size 16 --val-size "$vsize" >"$work/load.out" &
  loader=$!
  sleep 3
  physical_s=none
  [ "$compact" = 1 ] && physical_s=$(seconds ctl --command-timeout=300s compaction --physical "$rev")
  wait "$loader"
  cpu_s=$(echo "scale=2; ($(cpu_ticks "$pid") - $cpu0) / $(getconf CLK_TCK)" | bc)
  size=$(du -sk "$work/$tag" | cut -f1)
  stop_member
  echo "$tag keys=$keys passes=$passes value=$vsize compacted_at=$rev | $(tr '\n' ' ' <"$work/load.out") | physical_compaction_s=$physical_s server_cpu_s=$cpu_s data_dir_kb=$size"
  rm -rf "${work:?}/$tag"
done
