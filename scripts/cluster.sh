#!/usr/bin/env bash
# Starts, stops or shows a local 3-member detcd cluster.
#   scripts/cluster.sh start [DIR]   build detcd (release) and start members m1, m2, m3
#   scripts/cluster.sh stop  [DIR]   stop them (data is kept)
#   scripts/cluster.sh status [DIR]  show which members run
#   scripts/cluster.sh clean [DIR]   stop them and delete the data
# Clients: http://127.0.0.1:2379, :22379, :32379. Peers: :2380, :22380, :32380.
# DIR (default .cluster) holds each member's data dir, log and pid file.
set -euo pipefail

cmd=${1:-start}
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${2:-$top/.cluster}
bin=${DETCD_BIN:-$top/target/release/detcd}
names=(m1 m2 m3)
client_ports=(2379 22379 32379)
peer_ports=(2380 22380 32380)
initial=""
for i in 0 1 2; do
  initial+="${initial:+,}${names[$i]}=http://127.0.0.1:${peer_ports[$i]}"
done

running() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

case "$cmd" in
  start)
    if [ -z "${DETCD_BIN:-}" ]; then
      (cd "$top" && cargo build --release --quiet --bin detcd --bin detcdctl)
    fi
    mkdir -p "$dir"
    for i in 0 1 2; do
      n=${names[$i]}
      if running "$n"; then echo "$n already running (pid $(cat "$dir/$n.pid"))"; continue; fi
      "$bin" --name "$n" --data-dir "$dir/$n.etcd" \
        --listen-client-urls "http://127.0.0.1:${client_ports[$i]}" \
        --advertise-client-urls "http://127.0.0.1:${client_ports[$i]}" \
        --listen-peer-urls "http://127.0.0.1:${peer_ports[$i]}" \
        --initial-advertise-peer-urls "http://127.0.0.1:${peer_ports[$i]}" \
        --initial-cluster "$initial" --initial-cluster-token detcd-local \
        --initial-cluster-state new >>"$dir/$n.log" 2>&1 &
      echo $! >"$dir/$n.pid"
      echo "started $n (pid $!) client http://127.0.0.1:${client_ports[$i]} data $dir/$n.etcd"
    done
    echo "endpoints: 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379"
    ;;
  stop|clean)
    for n in "${names[@]}"; do
      if running "$n"; then kill "$(cat "$dir/$n.pid")" && echo "stopped $n"; fi
      rm -f "$dir/$n.pid"
    done
    if [ "$cmd" = clean ]; then rm -rf "$dir" && echo "removed $dir"; fi
    ;;
  status)
    for n in "${names[@]}"; do
      if running "$n"; then echo "$n running (pid $(cat "$dir/$n.pid"))"; else echo "$n stopped"; fi
    done
    ;;
  *) echo "usage: $0 start|stop|status|clean [DIR]" >&2; exit 2 ;;
esac
