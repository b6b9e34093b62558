# Shared by the scripts/bench-*.sh benchmarks (sourced, not run): builds detcd and the load
# generator, makes a scratch directory removed on exit, and starts one member of etcd or detcd.
# Sets: bench (the load generator), work (scratch dir), pid (the running member, if any).
bash scripts/setup.sh >/dev/null
cargo build --release --quiet --bin detcd --bin detcd-bench
bench=target/release/detcd-bench
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The binary for a tag: "detcd" is this tree's, anything else ETCD_BIN (default etcd).
server_bin() { if [ "$1" = detcd ]; then echo target/release/detcd; else echo "${ETCD_BIN:-etcd}"; fi; }

# start_member TAG CLIENT_PORT PEER_PORT: one member with its data in $work/TAG, etcd's
# recommended maximum quota (so neither refuses a load with NOSPACE); waits until it serves.
start_member() {
  "$(server_bin "$1")" --name n1 --data-dir "$work/$1" \
    --listen-client-urls "http://127.0.0.1:$2" --advertise-client-urls "http://127.0.0.1:$2" \
    --listen-peer-urls "http://127.0.0.1:$3" --initial-advertise-peer-urls "http://127.0.0.1:$3" \
    --initial-cluster "n1=http://127.0.0.1:$3" --initial-cluster-token "bench-$1" \
    --initial-cluster-state new --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) \
    >>"$work/$1.log" 2>&1 &
  pid=$!
  until ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$2" put __ready 1 >/dev/null 2>&1; do
    sleep 0.1
  done
}

# stop_member: SIGTERM and wait.
stop_member() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

# User + system CPU ticks of process $1 so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
