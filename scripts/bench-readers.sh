#!/usr/bin/env bash
# Large reads beside writes, etcd beside detcd in one run, one member each:
#   scripts/bench-readers.sh [KEYS] [VALUE_BYTES]     (default 100000 1024)
# For etcd then detcd: write KEYS distinct keys, then run a put load (LOAD puts, default
# 200000, 100 clients over 10 connections) while SCANNERS clients (default 4, one connection)
# read SCAN_KEYS consecutive keys per request (default 1000, about 1 MB), SCANS requests in all
# (default 3000). Prints both loads' throughput and latency percentiles: whether big reads hold
# up writes shows in the put load's tail.
# Environment: ETCD_BIN (default etcd), LOAD, SCANS, SCANNERS, SCAN_KEYS, SERVERS ("etcd detcd").
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-100000}
vsize=${2:-1024}
load=${LOAD:-200000}
scans=${SCANS:-3000}
scanners=${SCANNERS:-4}
scan_keys=${SCAN_KEYS:-1000}
servers=${SERVERS:-etcd detcd}
source scripts/lib/bench-common.sh
port=45579
for tag in $servers; do
  start_member "$tag" "$port" $((port + 1))
  common=(--endpoints "127.0.0.1:$port" --key-space "$keys" --key-size 16 --val-size "$vsize")
  "$bench" put "${common[@]}" --clients 100 --conns 10 --total "$keys" >/dev/null
  "$bench" scan "${common[@]}" --clients "$scanners" --conns 1 --total "$scans" \
    --scan-keys "$scan_keys" >"$work/scan.out" &
  scanner=$!
  cpu0=$(cpu_ticks "$pid")
  puts=$("$bench" put "${common[@]}" --clients 100 --conns 10 --total "$load")
  wait "$scanner"
  cpu_s=$(echo "scale=2; ($(cpu_ticks "$pid") - $cpu0) / $(getconf CLK_TCK)" | bc)
  stop_member
  echo "$tag keys=$keys value=$vsize | puts: $(echo "$puts" | tr '\n' ' ')| scans: $(tr '\n' ' ' <"$work/scan.out")| server_cpu_s=$cpu_s"
  rm -rf "${work:?}/$tag"
done
