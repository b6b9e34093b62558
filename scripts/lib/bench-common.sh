# Shared by the scripts/bench-*.sh benchmarks (sourced, not run): builds detcd and the load
# generator, makes a scratch directory removed on exit (every member or load still running in
# the background is stopped then), and starts members of etcd or detcd.
# Sets: bench (the load generator), work (scratch dir); launch sets launched, start_member pid;
# median prints the median of the numbers on its input.
bash scripts/setup.sh >/dev/null
cargo build --release --quiet --bin detcd --bin detcd-bench
bench=target/release/detcd-bench
work=$(mktemp -d)
pid=
cleanup() {
  local running
  running=$(jobs -p)
  [ -n "$running" ] && kill $running 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export ETCDCTL_API=3

# The binary for a tag: "detcd" is this tree's, anything else ETCD_BIN (default etcd).
server_bin() { if [ "$1" = detcd ]; then echo target/release/detcd; else echo "${ETCD_BIN:-etcd}"; fi; }

# launch TAG DATA NAME CLIENT_PORT PEER_PORT INITIAL_CLUSTER [FLAGS...]: starts member NAME of
# TAG's server with its data in $work/DATA (log: $work/DATA.log) and etcd's recommended maximum
# quota (so neither refuses a load with NOSPACE), without waiting. Its pid is in $launched.
launch() {
  local tag=$1 data=$2 name=$3 cport=$4 pport=$5 initial=$6
  shift 6
  "$(server_bin "$tag")" --name "$name" --data-dir "$work/$data" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "$initial" --initial-cluster-token "bench-$tag" --initial-cluster-state new \
    --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) "$@" >>"$work/$data.log" 2>&1 &
  launched=$!
}

# wait_serving CLIENT_PORT: until a put through it succeeds (gives up after 60 s).
wait_serving() {
  local _
  for _ in $(seq 600); do
    etcdctl --endpoints "127.0.0.1:$1" put __ready 1 >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "nothing serves on port $1" >&2
  exit 1
}

# start_member TAG CLIENT_PORT PEER_PORT [FLAGS...]: a single member n1 with its data in
# $work/TAG; waits until it serves. Its pid is in $pid.
start_member() {
  local tag=$1 cport=$2 pport=$3
  shift 3
  launch "$tag" "$tag" n1 "$cport" "$pport" "n1=http://127.0.0.1:$pport" "$@"
  pid=$launched
  wait_serving "$cport"
}

# stop_member [PID]: SIGTERM and wait (default: $pid, which is then cleared).
stop_member() {
  local p=${1:-$pid}
  kill -TERM "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  [ "$p" = "$pid" ] && pid=
  return 0
}

# first_read_s CLIENT_PORT KEY: seconds from now until a serializable get of KEY is answered.
first_read_s() {
  local t0 t1
  t0=$(date +%s.%N)
  until etcdctl --endpoints "127.0.0.1:$1" --consistency=s get "$2" 2>/dev/null | grep -q .; do
    sleep 0.05
  done
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

# The key a `detcd-bench put` of TOTAL puts over KEYS keys (key size 16) writes last.
last_key() { printf '%016d' $(( ($1 - 1) * 2654435761 % $2 )); }

# User + system CPU ticks of process $1 so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The median of the whitespace-separated numbers on stdin.
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
