#!/usr/bin/env bash
# Multi-process scaling of the whole training loop, as users run it: local
# mode (`recur train --workers W`: a coordinator and W worker processes on
# loopback) on the model of ../shared/bench/torch_ddp_charlm.py (embedding
# 64, 2x256 LSTM, per-worker batch 32, T=100, Adam, clip 5), each worker one
# goroutine and one BLAS thread. Runs W=1 and W=2 alternately ROUNDS times
# (the machine's load drifts) and prints each run's mean tokens/s (after the
# warm-up step) and the W=2/W=1 ratio of each round, then the median ratio.
# Each round also measures the machine's ceiling for this: the same training
# step (pkg/rnn BenchmarkTrainStep lstm-2x256, one goroutine) in one process
# alone, then in two independent processes at once, with no communication.
# Where PyTorch is installed (/usr/bin/python3 with torch), each round also
# runs PyTorch DDP on the same model (../shared/bench/torch_ddp_charlm.py,
# $RECUR_BENCH) with 1 and 2 processes, for its own 2/1 ratio on the same
# machine at the same time.
# Usage: scripts/bench_scaling.sh [ROUNDS] [STEPS]   (defaults 3, 200)
# Needs: make build; the corpus at $RECUR_DATA/tinyshakespeare.txt, or
# without RECUR_DATA at runs/tinyshakespeare.txt (where the README puts it).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
steps=${2:-200}
text=${RECUR_DATA:-runs}/tinyshakespeare.txt
[ -f "$text" ] || { echo "bench_scaling: corpus $text missing: the README's Quick start says where to get it (or set RECUR_DATA to its folder)" >&2; exit 1; }
[ -x bin/recur ] || { echo "bench_scaling: bin/recur missing: make build" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # run W: prints the mean tokens/s of a run with W workers
  local w=$1
  ./bin/recur train --config examples/charlm.yaml --workers "$w" --dir "$work/w$w" --fresh \
    --set data.text="$text" --set data.batch=$((32 * w)) --set train.threads=1 \
    --set train.steps="$steps" --set train.minutes=0 --set train.validate_every=0 \
    --set train.checkpoint_every=0 >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
  sed -n 's/.*mean throughput \([0-9]*\) tokens\/s.*/\1/p' "$work/log"
}

go test -tags openblas -c -o "$work/rnn.test" ./pkg/rnn
# The two workers of local mode each get their own CPU (recur train --pin,
# the default); so do the two independent processes of the ceiling, where
# taskset exists.
cpus=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status | tr ',' '\n' |
  awk -F- '{b = ($2 == "") ? $1 : $2; for (c = $1; c <= b; c++) print c}' | head -2 | tr '\n' ' ')
set -- $cpus
pin1="" pin2=""
if command -v taskset >/dev/null && [ $# -eq 2 ]; then pin1="taskset -c $1" pin2="taskset -c $2"; fi
step() { # step OUT [PIN...]: one process's TrainStep tokens/s into OUT
  local out=$1; shift
  RECUR_THREADS=1 "$@" "$work/rnn.test" -test.run '^$' -test.bench 'TrainStep/lstm-2x256$' -test.benchtime 30x |
    awk '/Benchmark/ {for (i = 1; i < NF; i++) if ($(i+1) == "tokens/s") print $i}' >"$out"
}

bench=${RECUR_BENCH:-../shared/bench}
ddp=""
if /usr/bin/python3 -c "import torch" 2>/dev/null && [ -f "$bench/torch_ddp_charlm.py" ]; then
  ddp=1
  # PyTorch at its best: the OpenBLAS kernels for this CPU (see bench_compare.sh).
  if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
    if [[ " $flags " == *" avx512f "* && " $flags " == *" avx512bw "* ]]; then export OPENBLAS_CORETYPE=SkylakeX
    elif [[ " $flags " == *" avx2 "* ]]; then export OPENBLAS_CORETYPE=Haswell; fi
  fi
fi
ddprun() { # ddprun W: PyTorch DDP total tokens/s with W processes
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$bench/torch_ddp_charlm.py" "$text" "$1" 30 2>/dev/null |
    sed -n 's/.*total \([0-9]*\) tokens\/s.*/\1/p'
}

median() { sort -n | awk '{a[NR]=$1} END{printf "%.2f", (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
ratios=() ceilings=() ddps=()
echo "| round | 1 worker tokens/s | 2 workers tokens/s | ratio | ceiling: 2 independent processes / 1 | PyTorch DDP 1 / 2 processes tokens/s | DDP ratio |"
echo "|---|---|---|---|---|---|---|"
for r in $(seq "$rounds"); do
  one=$(run 1)
  two=$(run 2)
  ratio=$(awk -v a="$two" -v b="$one" 'BEGIN{printf "%.2f", a/b}')
  step "$work/s0"
  step "$work/s1" $pin1 & step "$work/s2" $pin2; wait
  ceil=$(awk -v a="$(cat "$work/s0")" -v x="$(cat "$work/s1")" -v y="$(cat "$work/s2")" 'BEGIN{printf "%.2f", (x+y)/a}')
  ratios+=("$ratio") ceilings+=("$ceil")
  d1="" d2="" dr=""
  if [ -n "$ddp" ]; then
    d1=$(ddprun 1) d2=$(ddprun 2)
    dr=$(awk -v a="$d2" -v b="$d1" 'BEGIN{printf "%.2f", a/b}')
    ddps+=("$dr")
    dr="${dr}x"
  fi
  echo "| $r | $one | $two | ${ratio}x | ${ceil}x | $d1 / $d2 | $dr |"
done
line="median ratio $(printf '%s\n' "${ratios[@]}" | median)x, median ceiling $(printf '%s\n' "${ceilings[@]}" | median)x"
[ -n "$ddp" ] && line="$line, PyTorch DDP's median ratio $(printf '%s\n' "${ddps[@]}" | median)x"
echo "$line, over $rounds rounds"
