#!/usr/bin/env bash
# Ring allreduce over a shaped network, on one machine (run as root):
# every rank runs in its own network namespace (recur-rb-0..N-1) with a
# veth into a bridge that lives in a namespace of its own (recur-rb-br);
# each rank's egress is shaped to RATE with tc tbf. Prints every rank's
# ringbench line; busbw of an unshaped-CPU run should approach RATE.
# Uses only the addresses it assigns inside those namespaces (10.77.0.x)
# and removes everything it created on exit.
#
# Usage: scripts/netns_bench.sh [N=4] [FLOATS=10000000] [ITERS=5] [RATE=1gbit]
# Extra ringbench flags (e.g. --transport grpc, --segment-bytes 262144) go in
# $RINGBENCH_ARGS; the transport defaults to plain TCP links, as in workers.
set -euo pipefail
N=${1:-4}
FLOATS=${2:-10000000}
ITERS=${3:-5}
RATE=${4:-1gbit}
BURST=${BURST:-512kb} # tbf bucket; must be >= rate/HZ (1 Gbit/s at HZ=250: 500 KB)
P=recur-rb
PORT=7070
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for i in $(seq 0 $((N - 1))); do ip netns del "$P-$i" 2>/dev/null || true; done
  ip netns del "$P-br" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
(cd "$root" && go build -o "$tmp/ringbench" ./pkg/allreduce/cmd/ringbench)

ip netns add "$P-br"
ip -n "$P-br" link add br0 type bridge
ip -n "$P-br" link set br0 up
ip -n "$P-br" link set lo up
peers=""
for i in $(seq 0 $((N - 1))); do
  ns="$P-$i"
  addr="10.77.0.$((i + 1))"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  # Create the pair inside the rank's namespace, then move one end to the bridge.
  ip -n "$ns" link add eth0 type veth peer name "v$i"
  ip -n "$ns" link set "v$i" netns "$P-br"
  ip -n "$P-br" link set "v$i" master br0
  ip -n "$P-br" link set "v$i" up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
  # Token bucket: RATE sustained; the burst must cover a timer tick at
  # that rate or the link cannot reach RATE.
  ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$RATE" burst "$BURST" latency 50ms
  peers="$peers${peers:+,}$addr:$PORT"
done

secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
for i in $(seq 1 $((N - 1))); do
  RECUR_RING_SECRET=$secret ip netns exec "$P-$i" "$tmp/ringbench" --rank "$i" --peers "$peers" \
    --floats "$FLOATS" --iters "$ITERS" ${RINGBENCH_ARGS:-} >"$tmp/rank$i.log" 2>&1 &
  pids+=($!)
done
RECUR_RING_SECRET=$secret ip netns exec "$P-0" "$tmp/ringbench" --rank 0 --peers "$peers" \
  --floats "$FLOATS" --iters "$ITERS" ${RINGBENCH_ARGS:-}
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
pids=()
cat "$tmp"/rank*.log
echo "shaped at $RATE per rank egress; $RATE = $(awk -v r="$RATE" 'BEGIN{ if (r ~ /gbit$/) { sub(/gbit/,"",r); printf "%.4f", r*0.125 } else if (r ~ /mbit$/) { sub(/mbit/,"",r); printf "%.4f", r*0.000125 } else print "?" }') GB/s"
exit $status
