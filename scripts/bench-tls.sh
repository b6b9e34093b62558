#!/usr/bin/env bash
# The cost of TLS on the client port, detcd beside etcd on this machine, same client, same run:
# one member each, served on plain http:// and on https:// (one self-signed ECDSA P-256
# certificate for both: etcd's --auto-tls makes P-521 ones, which rustls does not take), with
# detcd-bench putting TOTAL keys (64 clients over 8 connections) and reading them back
# (linearizable ranges); each figure is the median of ROUNDS rounds.
#   scripts/bench-tls.sh [ROUNDS]    (default 3)
# Environment: TOTAL (requests per run, default 20000), ETCD_BIN (default etcd).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
total=${TOTAL:-20000}
source scripts/lib/bench-common.sh
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=bench -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/server.key" -out "$work/server.crt" 2>/dev/null

serve() { # $1 tag, $2 scheme: starts one member, waits until it serves
  local tag=$1 scheme=$2 url="$2://127.0.0.1:47379"
  "$(server_bin "$tag")" --name n1 --data-dir "$work/$tag-$scheme" \
    --listen-client-urls "$url" --advertise-client-urls "$url" \
    --listen-peer-urls http://127.0.0.1:47380 --initial-advertise-peer-urls http://127.0.0.1:47380 \
    --initial-cluster n1=http://127.0.0.1:47380 \
    --cert-file "$work/server.crt" --key-file "$work/server.key" \
    --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) >>"$work/$tag-$scheme.log" 2>&1 &
  pid=$!
  local _
  for _ in $(seq 600); do
    etcdctl --endpoints "$url" --insecure-transport=false --insecure-skip-tls-verify \
      put __ready 1 >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$tag does not serve on $url" >&2
  exit 1
}
run() { # bench args -> throughput
  "$bench" "$@" --total "$total" --clients 64 --conns 8 |
    awk '{for(i=1;i<=NF;i++) if ($i ~ /^throughput=/) {sub("throughput=","",$i); print $i}}'
}

declare -A results
for r in $(seq 1 "$rounds"); do
  for tag in etcd detcd; do
    for scheme in http https; do
      serve "$tag" "$scheme"
      ep="$scheme://127.0.0.1:47379"
      results[$tag,$scheme,put]+="$(run put --endpoints "$ep") "
      results[$tag,$scheme,range]+="$(run range --endpoints "$ep") "
      stop_member "$pid"
      rm -rf "${work:?}/$tag-$scheme"
    done
  done
done
printf '%-8s %-6s %12s %12s\n' server scheme put/s range/s
for tag in etcd detcd; do
  for scheme in http https; do
    printf '%-8s %-6s %12s %12s\n' "$tag" "$scheme" \
      "$(echo "${results[$tag,$scheme,put]}" | median)" \
      "$(echo "${results[$tag,$scheme,range]}" | median)"
  done
done
