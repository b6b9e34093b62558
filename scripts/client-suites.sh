#!/usr/bin/env bash
# Runs real clients' own published test suites against a fresh single detcd member, as their
# projects run them against etcd (needs network: pip and npm fetch the clients):
#   * python-etcd3 (github.com/kragniz/python-etcd3, tests/test_etcd3.py) on http://127.0.0.1:2379;
#     its three tests that need a 3-member cluster named pifpaf0..2 fail on one member;
#   * node etcd3 (github.com/microsoft/etcd3, its mocha suite) on https://127.0.0.1:2379 with
#     the certificates the suite ships, as its CI starts etcd;
#   * the Rust etcd-client crate (github.com/etcdv3/etcd-client, tests/client.rs) on
#     localhost:2379, with its ignored test_auth too (it wants user root:rootpwd with the root
#     role); its other ignored test, test_cluster, adds voters that never start and leaves a
#     one-member etcd without quorum, so it is skipped.
#   scripts/client-suites.sh [python|node|rust]...   (default: all three)
# Environment: PYTHON_ETCD3_SRC, NODE_ETCD3_SRC, ETCD_CLIENT_SRC (checkouts to use instead of
# cloning).
set -euo pipefail
cd "$(dirname "$0")/.."
suites=("${@:-python node rust}")
cargo build --release --quiet --bin detcd
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

serve() { # $1 client URL, then extra flags
  local url=$1
  shift
  target/release/detcd --data-dir "$work/data-$RANDOM" --listen-client-urls "$url" \
    --advertise-client-urls "$url" --listen-peer-urls http://127.0.0.1:2380 \
    --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster default=http://127.0.0.1:2380 "$@" >"$work/detcd.log" 2>&1 &
  pid=$!
  sleep 2
}
checkout() { # $1 repository URL, $2 directory
  [ -d "$2" ] || git clone -q --depth 1 "$1" "$2"
}

for suite in ${suites[*]}; do
  case $suite in
    python)
      src=${PYTHON_ETCD3_SRC:-$work/python-etcd3}
      checkout https://github.com/kragniz/python-etcd3 "$src"
      pip install -q etcd3 pytest hypothesis pifpaf "protobuf<3.21" tenacity mock
      serve http://127.0.0.1:2379
      # The suite patches `etcdrpc` as a top-level module: give it the installed one.
      site=$(python3 -c "import etcd3, os; print(os.path.dirname(etcd3.__file__))")
      (cd "$src" && ETCDCTL_API=3 PYTHONPATH=$site python3 -m pytest -q tests/test_etcd3.py) || true
      kill "$pid"; wait "$pid" 2>/dev/null || true
      ;;
    node)
      src=${NODE_ETCD3_SRC:-$work/node-etcd3}
      checkout https://github.com/microsoft/etcd3 "$src"
      (cd "$src" && npm ci --no-audit --no-fund >/dev/null && npx tsc)
      certs=$src/src/test/certs
      serve https://127.0.0.1:2379 --cert-file "$certs/certs/etcd0.localhost.crt" \
        --key-file "$certs/private/etcd0.localhost.key"
      (cd "$src" && ETCD_VERSION=3.4.23 npx mocha) || true
      kill "$pid"; wait "$pid" 2>/dev/null || true
      ;;
    rust)
      src=${ETCD_CLIENT_SRC:-$work/etcd-client}
      checkout https://github.com/etcdv3/etcd-client "$src"
      # Its build needs protoc: the one detcd's own build fetched.
      PROTOC=${PROTOC:-$(find ~/.cargo/registry/src -path '*protoc-bin-vendored-linux-*' \
        -name protoc -type f | head -1)}
      export PROTOC
      serve http://127.0.0.1:2379
      etcdctl --endpoints 127.0.0.1:2379 user add root:rootpwd >/dev/null
      etcdctl --endpoints 127.0.0.1:2379 role add root >/dev/null
      etcdctl --endpoints 127.0.0.1:2379 user grant-role root root >/dev/null
      (cd "$src" && cargo test --test client -- --include-ignored --skip test_cluster \
        --test-threads=1) || true
      kill "$pid"; wait "$pid" 2>/dev/null || true
      ;;
    *) echo "unknown suite $suite (python, node or rust)" >&2; exit 2 ;;
  esac
done
