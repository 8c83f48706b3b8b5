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
# Extra ringbench flags (e.g. --transport tcp, --tls=false, --compression
# fp16, --segment-bytes 262144) go in $RINGBENCH_ARGS; ringbench defaults
# to what workers run: gRPC streams with mutual TLS, fp32 on the wire.
# Flags for rank 0 alone (e.g. --cpuprofile /tmp/rank0.prof) go in
# $RINGBENCH_RANK0_ARGS.
#
# MATRIX=1 runs {gRPC, TCP} x {TLS, plaintext} x {fp32, fp16} on the same
# links, each with $RINGBENCH_ARGS added, then PyTorch gloo (one process
# per namespace, /usr/bin/python3 with torch; GLOO=0 skips it), and prints
# one markdown table of rank 0's figures: busbw in GB/s (float32 bytes,
# as nccl-tests, also for fp16), its share of RATE, and rank 0's CPU.
# REPS=k runs the whole matrix k times over and shows each cell's median
# run (the lower middle one for an even k) and the range: on a shared
# machine other work slows single runs.
set -euo pipefail
N=${1:-4}
FLOATS=${2:-10000000}
ITERS=${3:-5}
RATE=${4:-1gbit}
BURST=${BURST:-512kb} # tbf bucket; must be >= rate/HZ (1 Gbit/s at HZ=250: 500 KB)
MATRIX=${MATRIX:-0}
GLOO=${GLOO:-1}
REPS=${REPS:-1}
PYTHON=${PYTHON:-/usr/bin/python3}
P=${NETNS_PREFIX:-recur-rb}
PORT=7070
GLOO_PORT=29533
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
pids=()
peers=""

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for i in $(seq 0 $((N - 1))); do ip netns del "$P-$i" 2>/dev/null || true; done
  ip netns del "$P-br" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# link_gbps prints RATE in GB/s (bytes), or "?" for a unit it does not know.
link_gbps() {
  awk -v r="$RATE" 'BEGIN{ if (r ~ /gbit$/) { sub(/gbit/,"",r); printf "%.4f", r*0.125 } else if (r ~ /mbit$/) { sub(/mbit/,"",r); printf "%.4f", r*0.000125 } else print "?" }'
}

# setup_links creates the namespaces, the bridge and the shaped veths, and
# sets $peers.
setup_links() {
  ip netns add "$P-br"
  ip -n "$P-br" link add br0 type bridge
  ip -n "$P-br" link set br0 up
  ip -n "$P-br" link set lo up
  for i in $(seq 0 $((N - 1))); do
    local ns="$P-$i" addr="10.77.0.$((i + 1))"
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
}

# ringbench runs one ringbench per namespace with the given extra flags,
# prints rank 0's line, and the others' when QUIET is unset.
ringbench() {
  local secret i status=0
  secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  for i in $(seq 1 $((N - 1))); do
    RECUR_RING_SECRET=$secret ip netns exec "$P-$i" "$tmp/ringbench" --rank "$i" --peers "$peers" \
      --floats "$FLOATS" --iters "$ITERS" "$@" >"$tmp/rank$i.log" 2>&1 &
    pids+=($!)
  done
  # shellcheck disable=SC2086 # RINGBENCH_RANK0_ARGS is a list of flags
  RECUR_RING_SECRET=$secret ip netns exec "$P-0" "$tmp/ringbench" --rank 0 --peers "$peers" \
    --floats "$FLOATS" --iters "$ITERS" "$@" ${RINGBENCH_RANK0_ARGS:-} || status=1
  for i in "${pids[@]}"; do wait "$i" || status=1; done
  pids=()
  if [ -z "${QUIET:-}" ]; then
    cat "$tmp"/rank*.log
  elif [ $status != 0 ]; then
    cat "$tmp"/rank*.log >&2
  fi
  return $status
}

# gloo_rank.py is one rank of the allreduce loop of
# /work/shared/bench/gloo_allreduce.py (2 warm-up calls, a barrier, ITERS
# timed calls, one thread), started per namespace: that script spawns all
# ranks on 127.0.0.1 itself, so it cannot put them in namespaces.
write_gloo() {
  cat >"$tmp/gloo_rank.py" <<'PY'
import os, sys, time, torch, torch.distributed as dist
rank, world, floats, iters = (int(a) for a in sys.argv[1:5])
torch.set_num_threads(1)
dist.init_process_group("gloo", rank=rank, world_size=world)
t = torch.ones(floats)
for _ in range(2):
    dist.all_reduce(t)
dist.barrier()
s, c = time.perf_counter(), time.process_time()
for _ in range(iters):
    dist.all_reduce(t)
el, cpu = (time.perf_counter() - s) / iters, (time.process_time() - c) / iters
if rank == 0:
    alg = floats * 4 / el / 1e9
    print(f"gloo rank=0 world={world} bytes={floats*4} ms={el*1000:.1f} algbw_GBps={alg:.4f} "
          f"busbw_GBps={alg*2*(world-1)/world:.4f} cpu_ms={cpu*1000:.1f} cpu_pct={100*cpu/el:.0f}", flush=True)
dist.destroy_process_group()
PY
}

# gloo runs gloo_rank.py in every namespace and prints rank 0's line.
gloo() {
  local i status=0
  for i in $(seq 1 $((N - 1))); do
    MASTER_ADDR=10.77.0.1 MASTER_PORT=$GLOO_PORT GLOO_SOCKET_IFNAME=eth0 OMP_NUM_THREADS=1 \
      ip netns exec "$P-$i" "$PYTHON" "$tmp/gloo_rank.py" "$i" "$N" "$FLOATS" "$ITERS" >"$tmp/gloo$i.log" 2>&1 &
    pids+=($!)
  done
  MASTER_ADDR=10.77.0.1 MASTER_PORT=$GLOO_PORT GLOO_SOCKET_IFNAME=eth0 OMP_NUM_THREADS=1 \
    ip netns exec "$P-0" "$PYTHON" "$tmp/gloo_rank.py" 0 "$N" "$FLOATS" "$ITERS" || status=1
  for i in "${pids[@]}"; do wait "$i" || status=1; done
  pids=()
  if [ $status != 0 ]; then cat "$tmp"/gloo*.log >&2; fi
  return $status
}

# field prints the value of key=value in a result line.
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

# row prints one markdown row from the result lines of one cell (each
# prefixed with load=): the median run by busbw, the range, the loads.
row() {
  local name=$1 tls=$2 wire=$3 file=$4 link line bus lo hi loads
  link=$(link_gbps)
  if [ ! -s "$file" ]; then
    echo "| $name | $tls | $wire | failed | | | | | | |"
    return
  fi
  sort -t= -k2 -n <(while read -r l; do echo "$(field busbw_GBps "$l")=$l"; done <"$file") | cut -d= -f2- >"$file.sorted"
  line=$(sed -n "$((($(wc -l <"$file.sorted") + 1) / 2))p" "$file.sorted")
  bus=$(field busbw_GBps "$line")
  lo=$(field busbw_GBps "$(head -1 "$file.sorted")")
  hi=$(field busbw_GBps "$(tail -1 "$file.sorted")")
  loads=$(while read -r l; do field load "$l"; done <"$file" | paste -sd/)
  printf '| %s | %s | %s | %.3f | %.3f-%.3f | %s | %s | %s | %s | %s |\n' "$name" "$tls" "$wire" "$bus" "$lo" "$hi" \
    "$(awk -v b="$bus" -v l="$link" 'BEGIN{ if (l == "?") print "?"; else printf "%.0f%%", 100*b/l }')" \
    "$(field ms "$line")" "$(field cpu_ms "$line")" "$(field cpu_pct "$line")%" "$loads"
}

load1() { cut -d' ' -f1 /proc/loadavg; }

# matrix runs every cell REPS times, the repetitions outermost so that a
# change in the machine's load falls on every cell alike, and prints the
# table.
matrix() {
  local cells=() cell rep line t tls c gloo_ok=0 i
  for t in grpc tcp; do
    for tls in true false; do
      for c in none fp16; do cells+=("$t $tls $c"); done
    done
  done
  if [ "$GLOO" = 1 ]; then
    if "$PYTHON" -c 'import torch' 2>/dev/null; then
      write_gloo
      gloo_ok=1
      cells+=("gloo")
    else
      echo "gloo skipped: $PYTHON cannot import torch (apt-get install -y python3-torch libopenblas0-pthread)" >&2
    fi
  fi
  for rep in $(seq "$REPS"); do
    for i in "${!cells[@]}"; do
      read -r t tls c <<<"${cells[$i]}"
      local load
      load=$(load1)
      if [ "$t" = gloo ]; then
        line=$(gloo) || { echo "gloo failed; see above" >&2; continue; }
      else
        # shellcheck disable=SC2086 # RINGBENCH_ARGS is a list of flags
        line=$(QUIET=1 ringbench --transport "$t" --tls="$tls" --compression "$c" ${RINGBENCH_ARGS:-}) || continue
      fi
      echo "rep $rep load $load: $line" >&2
      echo "load=$load $line" >>"$tmp/cell$i"
    done
  done
  echo
  echo "$N ranks, $((4 * FLOATS)) bytes (float32), $ITERS timed calls per run, $REPS run(s) per cell (median shown), egress shaped to $RATE ($(link_gbps) GB/s) per rank; $(nproc) cores; at the end: $(uptime)"
  echo
  echo "| transport | security | wire | busbw GB/s | busbw range | of link | ms/call | CPU ms/call (rank 0) | CPU of one core (rank 0) | load avg before each run |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for i in "${!cells[@]}"; do
    read -r t tls c <<<"${cells[$i]}"
    if [ "$t" = gloo ]; then
      row "PyTorch gloo" plaintext fp32 "$tmp/cell$i"
    else
      row "$([ "$t" = grpc ] && echo gRPC || echo TCP)" "$([ "$tls" = true ] && echo TLS || echo plaintext)" \
        "$([ "$c" = none ] && echo fp32 || echo "$c")" "$tmp/cell$i"
    fi
  done
  [ "$gloo_ok" = 1 ] || [ "$GLOO" != 1 ] || echo "(gloo not run)"
}

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
(cd "$root" && go build -o "$tmp/ringbench" ./pkg/allreduce/cmd/ringbench)
setup_links
if [ "$MATRIX" = 1 ]; then
  matrix
  exit 0
fi
status=0
# shellcheck disable=SC2086 # RINGBENCH_ARGS is a list of flags
ringbench ${RINGBENCH_ARGS:-} || status=1
echo "shaped at $RATE per rank egress; $RATE = $(link_gbps) GB/s"
exit $status
