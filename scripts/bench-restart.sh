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
source scripts/lib/bench-common.sh

start() { # $1 tag, $2 data (in $work): one member, a snapshot only past twice the load
  launch "$1" "$2" n1 45379 45380 n1=http://127.0.0.1:45380 --snapshot-count $((entries * 2))
  pid=$launched
}

first_read_ms() { # ms from now until a serializable read answers
  local t0 t1
  t0=$(date +%s%N)
  until etcdctl --endpoints 127.0.0.1:45379 --dial-timeout=200ms --command-timeout=500ms \
      get --consistency=s __last >/dev/null 2>&1; do sleep 0.01; done
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}

measure() { # $1 tag
  local data="$1-$round"
  start "$1" "$data"
  first_read_ms >/dev/null
  "$bench" put --endpoints 127.0.0.1:45379 --conns 4 --clients 32 --total "$entries" >/dev/null
  etcdctl --endpoints 127.0.0.1:45379 put __last x >/dev/null
  stop_member
  start "$1" "$data"
  local clean; clean=$(first_read_ms)
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true
  start "$1" "$data"
  local killed; killed=$(first_read_ms)
  stop_member
  echo "$1 round $round: restart after SIGTERM ${clean} ms, after kill -9 ${killed} ms, data dir $(du -sh "$work/$data" | cut -f1)"
  rm -rf "${work:?}/$data"
}

for round in $(seq 1 "$rounds"); do
  measure etcd
  measure detcd
done
