#!/usr/bin/env bash
# Benchmarks detcd against the real etcd on this machine, same client, same run:
# a 3-member cluster of each (data on the same disk), detcd-bench as the load generator.
#   scripts/bench.sh [ROUNDS]      (default 3 rounds, alternating etcd / detcd; medians printed)
# Environment: TOTAL (requests per run, default 20000), ETCD_BIN (default etcd).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
total=${TOTAL:-20000}
source scripts/lib/bench-common.sh
pids=()

start_cluster() { # $1 = tag
  local initial="" i
  pids=()
  for i in 1 2 3; do initial+="${initial:+,}n$i=http://127.0.0.1:4${i}380"; done
  for i in 1 2 3; do
    launch "$1" "$1-n$i" "n$i" "4${i}379" "4${i}380" "$initial"
    pids+=("$launched")
  done
  wait_serving 41379
}
stop_cluster() { for p in "${pids[@]}"; do stop_member "$p"; done; pids=(); rm -rf "${work:?}"/*; }

eps=127.0.0.1:41379,127.0.0.1:42379,127.0.0.1:43379
leader=127.0.0.1:41379
run() { # bench args -> prints throughput
  "$bench" "$@" --total "$total" | awk '/throughput=/{for(i=1;i<=NF;i++) if ($i ~ /^throughput=/) {sub("throughput=","",$i); print $i}}'
}
declare -A results
for r in $(seq 1 "$rounds"); do
  for tag in etcd detcd; do
    start_cluster "$tag"
    results[$tag,put1]+="$(run put --endpoints $leader --clients 1 --conns 1) "
    results[$tag,put64]+="$(run put --endpoints $eps --clients 64 --conns 8) "
    results[$tag,get64]+="$(run range --endpoints $eps --clients 64 --conns 8) "
    results[$tag,sget64]+="$(run range-serializable --endpoints $eps --clients 64 --conns 8) "
    # Peak resident memory of the largest member after all workloads (kB).
    rss=0
    for p in "${pids[@]}"; do
      r=$(awk '/VmHWM/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
      [ "${r:-0}" -gt "$rss" ] && rss=$r
    done
    results[$tag,rss]+="$rss "
    stop_cluster
  done
done
printf '%-32s %12s %12s %8s\n' "workload (3 members, req/s)" etcd detcd ratio
for w in put1 put64 get64 sget64; do
  e=$(echo "${results[etcd,$w]}" | median); d=$(echo "${results[detcd,$w]}" | median)
  printf '%-32s %12s %12s %8.2f\n' "$w" "$e" "$d" "$(echo "$d / $e" | bc -l)"
done
e=$(echo "${results[etcd,rss]}" | median); d=$(echo "${results[detcd,rss]}" | median)
printf '%-32s %12s %12s %8.2f\n' "peak RSS of a member (kB)" "$e" "$d" "$(echo "$d / $e" | bc -l)"
echo "(each figure is the median of $rounds runs of $total requests; ratio = detcd / etcd)"
