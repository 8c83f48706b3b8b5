#!/usr/bin/env bash
# Side-by-side benchmarks against the PyTorch references on this machine, in
# one run (absolute times on a shared machine drift; compare the ratios).
# Needs: make setup; apt-get install -y python3-torch libopenblas0-pthread;
# ../shared/bench (RECUR_BENCH) and tinyshakespeare (RECUR_DATA).
# Usage: scripts/bench_compare.sh [rnn|cluster|ring|all]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
BENCH=${RECUR_BENCH:-../shared/bench}
DATA=${RECUR_DATA:-../shared/data}
what=${1:-all}
py=/usr/bin/python3
[ -x "$py" ] && "$py" -c "import torch" 2>/dev/null || { echo "PyTorch missing: apt-get install -y python3-torch libopenblas0-pthread" >&2; exit 1; }
# PyTorch at its best: Debian's OpenBLAS 0.3.21 picks its SSE3 "Prescott"
# kernels on CPUs newer than itself (Recur's openblas package corrects this
# in-process); give the PyTorch runs the same kernels through
# OPENBLAS_CORETYPE unless the caller set it.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
  has() { [[ " $flags " == *" $1 "* ]]; }
  if has avx512f && has avx512bw && has avx512vl && has avx512dq; then
    export OPENBLAS_CORETYPE=SkylakeX
  elif has avx2 && has fma; then
    export OPENBLAS_CORETYPE=Haswell
  fi
fi
echo "OpenBLAS kernels for PyTorch: ${OPENBLAS_CORETYPE:-detected by OpenBLAS}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if [ "$what" = rnn ] || [ "$what" = all ]; then
  go test -tags openblas -c -o "$out/rnn.test" ./pkg/rnn
  echo "| step | PyTorch tokens/s | Recur tokens/s | ratio | Recur GFLOP/s | sgemm peak GFLOP/s |"
  echo "|---|---|---|---|---|---|"
  peak=$("$out/rnn.test" -test.run '^$' -test.bench 'SgemmPeak/threads-2' -test.benchtime 5x | awk '/GFLOP/ {print $3}')
  for cfg in "lstm 1 128 10" "gru 1 128 10" "rnn 1 128 10" "lstm 2 512 3"; do
    set -- $cfg
    name="$1-${2}x$3"
    tt=$("$py" "$BENCH/torch_rnn_step.py" --cell "$1" --layers "$2" --hidden "$3" --steps "$4" | sed 's/.*tokens_per_sec=//')
    line=$("$out/rnn.test" -test.run '^$' -test.bench "TrainStep/$name\$" -test.benchtime "${4}x" | grep Benchmark)
    rt=$(echo "$line" | awk '{for (i=1;i<NF;i++) if ($(i+1)=="tokens/s") print $i}')
    gf=$(echo "$line" | awk '{for (i=1;i<NF;i++) if ($(i+1)=="GFLOP/s") print $i}')
    echo "| $name | $tt | $rt | $(awk -v a="$rt" -v b="$tt" 'BEGIN{printf "%.2fx", a/b}') | $gf | $peak |"
  done
fi

if [ "$what" = cluster ] || [ "$what" = all ]; then
  go test -tags openblas -c -o "$out/cluster.test" ./internal/coordinator
  ddp=$(OPENBLAS_NUM_THREADS=1 "$py" "$BENCH/torch_ddp_charlm.py" "$DATA/tinyshakespeare.txt" 2 20 2>/dev/null | sed -n 's/.*total \([0-9]*\) tokens\/s.*/\1/p')
  res=$(RECUR_DATA="$DATA" "$out/cluster.test" -test.run '^$' -test.bench 'ClusterStep' -test.benchtime 30x | grep Benchmark)
  echo
  echo "| loop | tokens/s | allreduce share | coordinator wait share |"
  echo "|---|---|---|---|"
  echo "$res" | awk '{n=$1; for (i=1;i<NF;i++) {if ($(i+1)=="tokens/s") t=$i; if ($(i+1)=="allreduce_share") a=$i; if ($(i+1)=="coord_wait_share") w=$i}; printf "| %s | %s | %s | %s |\n", n, t, a, w}'
  echo "| PyTorch DDP, 2 processes (torch_ddp_charlm.py TEXT 2 20) | $ddp | | |"
fi

if [ "$what" = ring ] || [ "$what" = all ]; then
  echo
  gloo=$("$py" "$BENCH/gloo_allreduce.py" --world 4 --floats 10000000 | sed 's/.*busbw_GBps=//')
  res=$(go test -run '^$' -bench 'Ring(TCP)?(TLS)?/ranks-4/40MB' -benchtime 5x ./pkg/allreduce)
  res16=$(RING_BENCH_COMPRESSION=fp16 go test -run '^$' -bench 'Ring(TCP)?(TLS)?/ranks-4/40MB' -benchtime 5x ./pkg/allreduce)
  busbw() { echo "$1" | awk -v b="$2" 'index($1, b"/") == 1 {for (i=1;i<NF;i++) if ($(i+1)=="busbw_GB/s") print $i}'; }
  cpu() { echo "$1" | awk -v b="$2" 'index($1, b"/") == 1 {for (i=1;i<NF;i++) if ($(i+1)=="cpu_ms/op") print $i}'; }
  echo "| allreduce, 4 ranks, 40 MB, loopback | busbw GB/s (fp32 bytes) | / gloo | CPU ms per call | busbw with fp16 on the wire |"
  echo "|---|---|---|---|---|"
  echo "| PyTorch gloo | $gloo | 1.00x | | |"
  for row in "BenchmarkRingTLS:gRPC streams, mutual TLS (the default)" "BenchmarkRing:gRPC streams, plaintext (--insecure)" \
             "BenchmarkRingTCPTLS:TCP links, mutual TLS" "BenchmarkRingTCP:TCP links, plaintext (--insecure)"; do
    b=${row%%:*} name=${row#*:}
    v=$(busbw "$res" "$b")
    echo "| Recur, $name | $v | $(awk -v a="$v" -v g="$gloo" 'BEGIN{printf "%.2fx", a/g}') | $(cpu "$res" "$b") | $(busbw "$res16" "$b") |"
  done
fi
