#!/usr/bin/env bash
# Trains a forecast config once per seed and reports the held-out test
# error of each method at step 1 and at the last step (data.horizon), as
# the mean and standard deviation over the seeds: what the README's
# forecast tables report.
#
#   scripts/forecast_seeds.sh CONFIG SEED... [-- --set KEY=VALUE ...]
#   e.g. scripts/forecast_seeds.sh examples/sunspots.yaml 1 2 3 4 5
#
# Each seed trains in local mode (1 worker) into $RUNS/NAME-sSEED (NAME:
# the config's file name, plus $TAG when set), and its best checkpoint
# (lowest validation loss) writes every test forecast with
# `recur predict --test-set` (test.csv there); the figures are computed
# from those CSV files, so they can be checked with any other tool.
# Needs: make build (or RECUR=path/to/recur) and python3.
set -euo pipefail
RECUR=${RECUR:-./bin/recur}
RUNS=${RUNS:-runs}
[ $# -ge 2 ] || { echo "usage: $0 CONFIG SEED... [-- --set KEY=VALUE ...]" >&2; exit 2; }
config=$1; shift
seeds=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do seeds+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#seeds[@]} -gt 0 ] || { echo "$0: no seed given" >&2; exit 2; }
[ -x "$RECUR" ] || { echo "$0: $RECUR not found: run make build, or set RECUR" >&2; exit 2; }
name=$(basename "$config" .yaml)${TAG:+-$TAG}
mkdir -p "$RUNS"
csvs=() metrics=()
for s in "${seeds[@]}"; do
	dir=$RUNS/$name-s$s
	echo "seed $s: training into $dir" >&2
	"$RECUR" train --config "$config" --workers 1 --dir "$dir" --fresh --set train.seed="$s" "$@" >"$dir.log" 2>&1 ||
		{ echo "$0: seed $s failed; its output is in $dir.log" >&2; tail -5 "$dir.log" >&2; exit 1; }
	"$RECUR" predict --run "$dir" --checkpoint best --test-set --out "$dir/test.csv"
	csvs+=("$dir/test.csv")
	metrics+=("$dir/metrics.jsonl")
done
echo "$config${*:+ $*}, seeds ${seeds[*]}, --checkpoint best"
# The best validation loss of each seed and its step, from the runs' typed
# event logs (metrics.jsonl): what the configuration is chosen by.
python3 -c 'import json, statistics, sys
best = [min((e["val_loss"], e["step"]) for e in map(json.loads, open(p)) if e.get("kind") == "validation") for p in sys.argv[1:]]
sd = statistics.stdev(v for v, _ in best) if len(best) > 1 else 0
print("validation loss (normalised MSE), best checkpoint: %.4f ± %.4f (steps %s)" % (statistics.mean(v for v, _ in best), sd, ", ".join(str(s) for _, s in best)))' "${metrics[@]}"
echo "test RMSE, mean ± sd over the seeds:"
# Per file (seed), method, column and step: the RMSE; then over files, the
# mean and sample standard deviation.
awk -F, '
FNR == 1 { file++; for (i = 6; i <= NF; i++) method[i] = $i; nm = NF; next }
{
	col = $4; step = $3 + 0; if (step > H) H = step
	if (!(col in seen)) { seen[col] = 1; cols[++nc] = col }
	for (i = 6; i <= nm; i++) { d = $i - $5; se[file, method[i], col, step] += d * d; n[file, method[i], col, step]++ }
}
END {
	for (c = 1; c <= nc; c++) {
		printf "%-16s %18s %18s\n", cols[c], "step 1", "step " H
		for (i = 6; i <= nm; i++) {
			line = sprintf("%-16s", method[i])
			split("1 " H, steps, " ")
			for (k = 1; k <= 2; k++) {
				s = 0; s2 = 0
				for (f = 1; f <= file; f++) { r = sqrt(se[f, method[i], cols[c], steps[k]] / n[f, method[i], cols[c], steps[k]]); s += r; s2 += r * r }
				m = s / file; sd = file > 1 ? sqrt(max0((s2 - file * m * m) / (file - 1))) : 0
				line = line sprintf(" %18s", sprintf("%.1f ± %.1f", m, sd))
			}
			print line
		}
	}
}
function max0(x) { return x > 0 ? x : 0 }
' "${csvs[@]}"
