#!/usr/bin/env bash
# Installs what the tests need besides the Rust toolchain: the real etcdctl 3.4 (Debian's
# etcd-client) for interoperability tests and etcd itself (etcd-server) for side-by-side
# comparisons and benchmarks. protoc needs nothing: it comes from the protoc-bin-vendored crate.
set -euo pipefail

need=()
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || need+=(etcd-server)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "setup: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian package may try to start an etcd service on 2379; the tests want the port free.
$sudo systemctl stop etcd >/dev/null 2>&1 || true
pkill -x etcd >/dev/null 2>&1 || true
etcdctl version | head -1
