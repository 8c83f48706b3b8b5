#!/usr/bin/env bash
# Local mode, 2 workers, the same char LM, alternating ring transports and
# security: gRPC streams with mutual TLS (the default) against TCP links in
# plaintext (the default before TLS). Each configuration runs ROUNDS times,
# interleaved, so drift on a shared machine hits both alike; throughput is
# global tokens over wall time from each run's metrics.jsonl (steps after
# the first WARM), never from logs.
#
# Usage: scripts/bench_transport_local.sh [TEXT] [STEPS=300] [ROUNDS=3]
# TEXT defaults to runs/fortunes.txt (make quickstart) or
# $RECUR_DATA/tinyshakespeare.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
text=${1:-}
if [ -z "$text" ]; then
  for f in "$root/runs/fortunes.txt" "${RECUR_DATA:-/nonexistent}/tinyshakespeare.txt"; do
    [ -f "$f" ] && text=$f && break
  done
fi
[ -n "$text" ] && [ -f "$text" ] || { echo "no corpus: pass TEXT, or run make quickstart (runs/fortunes.txt), or set RECUR_DATA" >&2; exit 2; }
STEPS=${2:-300}
ROUNDS=${3:-3}
WARM=${WARM:-20}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -tags openblas -o "$tmp/recur" ./cmd/recur 2>/dev/null || go build -o "$tmp/recur" ./cmd/recur)

throughput() { # metrics.jsonl -> tokens/s over the steps after WARM
  python3 - "$1" "$WARM" <<'PY'
import json, sys
steps = [e for e in map(json.loads, open(sys.argv[1])) if e.get("kind") == "step"]
steps = steps[int(sys.argv[2]):]
a, b = steps[0], steps[-1]
print("%.0f" % ((b["total_tokens"] - a["total_tokens"]) / (b["elapsed_seconds"] - a["elapsed_seconds"])))
PY
}

declare -A sum
for r in $(seq 1 "$ROUNDS"); do
  for cfg in grpc-tls tcp-plain; do
    args=(--set cluster.ring_transport=grpc)
    [ "$cfg" = tcp-plain ] && args=(--set cluster.ring_transport=tcp --insecure)
    dir="$tmp/$cfg-$r"
    "$tmp/recur" train --config "$root/examples/charlm.yaml" --text "$text" --workers 2 --steps "$STEPS" \
      --dir "$dir" --sample 0 "${args[@]}" >"$tmp/$cfg-$r.out" 2>&1 || { cat "$tmp/$cfg-$r.out"; exit 1; }
    t=$(throughput "$dir/metrics.jsonl")
    echo "round $r $cfg: $t tokens/s"
    sum[$cfg]=$(( ${sum[$cfg]:-0} + t ))
  done
done
g=$(( sum[grpc-tls] / ROUNDS )) p=$(( sum[tcp-plain] / ROUNDS ))
echo
echo "| local mode, 2 workers, examples/charlm.yaml, $STEPS steps x $ROUNDS rounds | tokens/s | ratio |"
echo "|---|---|---|"
echo "| TCP links, plaintext (--insecure) | $p | 1.000 |"
echo "| gRPC streams, mutual TLS (the default) | $g | $(awk -v a="$g" -v b="$p" 'BEGIN{printf "%.3f", a/b}') |"
