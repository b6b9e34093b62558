#!/usr/bin/env bash
# The cost of auth, detcd beside etcd on this machine, same client, same run: one member each,
# with auth off, then on (a user whose role may read and write every key, so each request is
# checked against its permissions), with detcd-bench putting TOTAL keys (64 clients over 8
# connections, one token) and reading them back (linearizable ranges); each figure is the
# median of ROUNDS rounds.
#   scripts/bench-auth.sh [ROUNDS]    (default 3)
# Environment: TOTAL (requests per run, default 20000), ETCD_BIN (default etcd).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
total=${TOTAL:-20000}
source scripts/lib/bench-common.sh
url=http://127.0.0.1:47379

serve() { # $1 tag: starts one member, waits until it serves
  local tag=$1
  "$(server_bin "$tag")" --name n1 --data-dir "$work/$tag" \
    --listen-client-urls "$url" --advertise-client-urls "$url" \
    --listen-peer-urls http://127.0.0.1:47380 --initial-advertise-peer-urls http://127.0.0.1:47380 \
    --initial-cluster n1=http://127.0.0.1:47380 \
    --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) >>"$work/$tag.log" 2>&1 &
  pid=$!
  local _
  for _ in $(seq 600); do
    etcdctl --endpoints "$url" put __ready 1 >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$tag does not serve on $url" >&2
  exit 1
}
enable_auth() {
  local c="etcdctl --endpoints $url"
  $c user add root:rootpw >/dev/null
  $c user add bench:benchpw >/dev/null
  $c role add rw >/dev/null
  $c role grant-permission rw readwrite --from-key '' >/dev/null
  $c user grant-role bench rw >/dev/null
  $c auth enable >/dev/null
}
run() { # bench args -> throughput
  "$bench" "$@" --total "$total" --clients 64 --conns 8 --endpoints "$url" |
    awk '{for(i=1;i<=NF;i++) if ($i ~ /^throughput=/) {sub("throughput=","",$i); print $i}}'
}

declare -A results
for r in $(seq 1 "$rounds"); do
  for tag in etcd detcd; do
    for mode in off on; do
      serve "$tag"
      user=()
      if [ "$mode" = on ]; then
        enable_auth
        user=(--user bench:benchpw)
      fi
      results[$tag,$mode,put]+="$(run put "${user[@]}") "
      results[$tag,$mode,range]+="$(run range "${user[@]}") "
      stop_member "$pid"
      rm -rf "${work:?}/$tag"
    done
  done
done
printf '%-8s %-5s %12s %12s\n' server auth put/s range/s
for tag in etcd detcd; do
  for mode in off on; do
    printf '%-8s %-5s %12s %12s\n' "$tag" "$mode" \
      "$(echo "${results[$tag,$mode,put]}" | median)" \
      "$(echo "${results[$tag,$mode,range]}" | median)"
  done
done
