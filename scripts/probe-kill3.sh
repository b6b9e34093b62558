#!/usr/bin/env bash
# Manual probe (not run by CI): needs `cargo build` first; prints what each restart served first.
# 3 members, write load, kill -9 one member, restart it, read at once from it (serializable).
set -u
B=/work/main/target/debug
D=$(mktemp -d)
IC="m1=http://127.0.0.1:23801,m2=http://127.0.0.1:23802,m3=http://127.0.0.1:23803"
start() { i=$1
  $B/detcd --name m$i --data-dir $D/m$i --listen-client-urls http://127.0.0.1:2379$i --advertise-client-urls http://127.0.0.1:2379$i \
   --listen-peer-urls http://127.0.0.1:2380$i --initial-advertise-peer-urls http://127.0.0.1:2380$i \
   --initial-cluster $IC --initial-cluster-token probe > $D/m$i.log 2>&1 &
  echo $! > $D/m$i.pid; }
for i in 1 2 3; do start $i; done
sleep 3
EP=127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793
( n=0; while [ -e $D/run ] || [ $n -eq 0 ]; do touch $D/run; n=$((n+1)); $B/detcdctl --endpoints=$EP put k$((n%500)) v$n >/dev/null 2>>$D/puterr || echo fail >> $D/fails; echo $n > $D/count; done ) &
LOAD=$!
sleep 5
for round in 1 2 3; do
  i=$(( (round % 3) + 1 ))
  before=$($B/detcdctl --endpoints=127.0.0.1:2379$i endpoint status -w json 2>/dev/null | python3 -c 'import sys,json; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
  kill -9 $(cat $D/m$i.pid); sleep 2; start $i
  t0=$(date +%s%N)
  for try in $(seq 1 100); do
    r=$($B/detcdctl --endpoints=127.0.0.1:2379$i get k1 --consistency=s -w json 2>/dev/null | python3 -c 'import sys,json; print(json.load(sys.stdin)["header"]["revision"])' 2>/dev/null) && break
    sleep 0.05
  done
  t1=$(date +%s%N)
  echo "round $round: killed m$i at revision >= $before; first serializable read after restart at revision $r, $(( (t1-t0)/1000000 )) ms after start"
  sleep 3
done
rm -f $D/run; wait $LOAD 2>/dev/null
echo "puts issued: $(cat $D/count), failed: $(wc -l < $D/fails 2>/dev/null || echo 0)"
for i in 1 2 3; do $B/detcdctl --endpoints=127.0.0.1:2379$i endpoint status -w simple 2>&1 | cut -c1-120; done
$B/detcdctl --endpoints=$EP endpoint hashkv --cluster 2>&1 | head -5
for i in 1 2 3; do kill $(cat $D/m$i.pid) 2>/dev/null; done
