#!/usr/bin/env bash
# readme_check.sh: every shell command of the README, run verbatim in a fresh
# clone, as a new user would paste it (make readme-check; .ci/run runs it).
#
# What is a command
#   * Fenced blocks whose info string is sh, bash, shell or console are run;
#     other blocks (```go, a plain ``` of program output, indented blocks) are
#     not. To show a command without running it, use a plain ``` block.
#   * sh/bash/shell: every line is shell. A command spans as many lines as
#     bash's own parser needs (bash -n), so backslash continuations, quotes
#     over several lines and loops are one command. Blank and comment-only
#     lines between commands are not commands.
#   * console: a line starting with "$ " begins a command (continued the same
#     way); other lines are the output shown, and are not checked.
#
# How it runs
#   * The checkout is cloned (git clone) into a temporary directory, at HEAD
#     plus the uncommitted changes of tracked files: untracked files and
#     ../shared are not there. Nothing is installed beforehand: what a command
#     needs, the README must install (make quickstart does).
#   * Blocks run in README order, each in a new bash started at the clone's
#     root (a cd or export lasts until the end of its block), without the
#     caller's RECUR_* variables, stdin from /dev/null. A command passes when it
#     exits 0; a block stops at its first failure and the check goes on with
#     the next block. A block has READMECHECK_BLOCK_TIMEOUT seconds (600).
#   * After the last block the clone must be clean: a README command must not
#     leave an untracked file outside .gitignore (a model.safetensors in the
#     root) or change a tracked one.
#   * Every rule below must match some command: a stale rule is an error.
#
# Rules: the first RULES entry whose pattern (a bash extended regex, matched
# against the command's whole text) matches decides what happens to a command;
# a command no rule matches runs as it is. Actions:
#   env VAR=VALUE ...  run the command verbatim (in a subshell) with these
#                      variables set: budgets the project documents, so that a
#                      10-minute training ends after a few steps the same way.
#   supply PATH        a file the README downloads from the internet, which CI
#                      cannot reach: copy $READMECHECK_DATA/$(basename PATH) to
#                      PATH when it exists (the command is not run), else run
#                      the command.
#   skip REASON        not run; REASON is printed in the summary.
#
# Environment: READMECHECK_DATA (default: ../shared/data beside the checkout)
# for supply; READMECHECK_BLOCK_TIMEOUT; READMECHECK_KEEP=1 keeps the clone
# (a failed check always keeps it); READMECHECK_VERBOSE=1 streams every
# command's output (by default only a failed command's last lines are shown);
# READMECHECK_LIST=1 prints each command and what the rules do with it, and
# runs nothing.
#
# Usage: scripts/readme_check.sh [README]   (default README.md)
# Exit status: 0 every command passed or was skipped by a rule, 1 otherwise.
set -euo pipefail

RULES=(
	# pattern                                   action   argument
	'^make quickstart'                          env      'QUICKSTART_MINUTES=0.5'
	'^make test( |$)'                           skip     'the whole suite, which .ci/run runs before this check'
	'^make test-stress'                         skip     'the ring tests 20 times under -race, which .ci/run runs before this check'
	'^make readme-check'                        skip     'this check itself'
	'^make test-cluster'                        skip     'the kill -9 tests and the soak, which .ci/run runs after this check'
	'^make test-netns'                          skip     'the cluster in network namespaces (root, about 2 minutes), which .ci/run runs after this check'
	'^make bench BENCH='                        env      'BENCHTIME=1x'
	'^make bench-scaling'                       env      'ROUNDS=1 STEPS=20'
	'recur train '                              env      'RECUR_TRAIN_STEPS=20'
	'scripts/forecast_seeds\.sh '               env      'RECUR_TRAIN_STEPS=20'
	'^curl .*tinyshakespeare'                   supply   'runs/tinyshakespeare.txt'
	'recur (coordinator|worker) .*10\.0\.0\.'   skip     'machines of a real network (10.0.0.x); the same processes on loopback are what make test (internal/cli TestProcesses*) and make compose-test run'
	'^docker'                                   skip     'needs the image (make image) and Docker: .ci/run runs this cluster as make compose-test'
	'^curl -s 127\.0\.0\.1:9090/metrics'         skip     'reads the compose cluster (skipped above)'
	'^kubectl|kustomize edit'                   skip     'needs a Kubernetes cluster: make deploy-check (part of make test) renders and checks these manifests'
)

src=$(cd "$(dirname "$0")/.." && pwd)
readme=${1:-README.md}
data=${READMECHECK_DATA:-$src/../shared/data}
data=$(cd "$data" 2>/dev/null && pwd || echo "$data")
block_timeout=${READMECHECK_BLOCK_TIMEOUT:-600}
[ -f "$src/$readme" ] || { echo "readme_check: no $src/$readme" >&2; exit 1; }

# ---- extract: $work/cmds/N holds command N's text, $work/index its block and line
work=$(mktemp -d "${TMPDIR:-/tmp}/readme-check.XXXXXX")
trap 'rm -rf "$work"' EXIT # until the clone runs: then kept when the check fails
mkdir -p "$work/cmds" "$work/logs" "$work/blocks"
: >"$work/index"
n=0 block=0 lineno=0 kind="" cmd="" start=0 indent=""
complete() { # complete TEXT: whether TEXT is whole commands (bash -n takes a final backslash for one)
	[[ $1 != *\\ ]] && bash -n <<<"$1" 2>/dev/null
}
while IFS= read -r line || [ -n "$line" ]; do
	lineno=$((lineno + 1))
	if [ -z "$kind" ]; then
		if [[ $line =~ ^([[:space:]]*)\`\`\`[[:space:]]*(sh|bash|shell|console)[[:space:]]*$ ]]; then
			kind=${BASH_REMATCH[2]} indent=${BASH_REMATCH[1]} block=$((block + 1))
		elif [[ $line =~ ^[[:space:]]*\`\`\` ]]; then
			kind=other
		fi
		continue
	fi
	if [[ $line =~ ^[[:space:]]*\`\`\`[[:space:]]*$ ]]; then
		[ -z "$cmd" ] || { echo "readme_check: $readme:$start: not a complete shell command by the end of its block" >&2; exit 1; }
		kind=""
		continue
	fi
	[ "$kind" = other ] && continue
	line=${line#"$indent"}
	if [ -z "$cmd" ]; then
		if [ "$kind" = console ]; then
			[[ $line == '$ '* ]] || continue
			line=${line#'$ '}
		fi
		[[ $line =~ ^[[:space:]]*(#.*)?$ ]] && continue
		cmd=$line start=$lineno
	else
		cmd+=$'\n'$line
	fi
	if complete "$cmd"; then
		n=$((n + 1))
		printf '%s' "$cmd" >"$work/cmds/$n"
		echo "$n $block $start" >>"$work/index"
		cmd=""
	fi
done <"$src/$readme"
[ -z "$kind" ] || { echo "readme_check: $readme: a code block is not closed" >&2; exit 1; }
[ "$n" -gt 0 ] || { echo "readme_check: no shell blocks in $readme" >&2; exit 1; }

# ---- rules: the action of each command
declare -A action arg used
for ((c = 1; c <= n; c++)); do
	text=$(<"$work/cmds/$c")
	action[$c]=run arg[$c]=""
	for ((r = 0; r < ${#RULES[@]}; r += 3)); do
		if [[ $text =~ ${RULES[r]} ]]; then
			action[$c]=${RULES[r + 1]} arg[$c]=${RULES[r + 2]} used[$r]=1
			break
		fi
	done
done
stale=0
for ((r = 0; r < ${#RULES[@]}; r += 3)); do
	case ${RULES[r + 1]} in env | supply | skip) ;; *) echo "readme_check: rule '${RULES[r]}': unknown action ${RULES[r + 1]}" >&2; exit 1 ;; esac
	[ -n "${RULES[r + 2]}" ] || { echo "readme_check: rule '${RULES[r]}' needs an argument (a skip says why)" >&2; exit 1; }
	[ -n "${used[$r]:-}" ] || { echo "readme_check: rule '${RULES[r]}' matches no command of $readme: remove it" >&2; stale=1; }
done
[ "$stale" = 0 ] || exit 1
if [ -n "${READMECHECK_LIST:-}" ]; then
	while read -r c b l; do
		printf '%s:%s (block %s) [%s%s]\n' "$readme" "$l" "$b" "${action[$c]}" "${arg[$c]:+ ${arg[$c]}}"
		sed 's/^/    /' "$work/cmds/$c"; echo
	done <"$work/index"
	exit 0
fi

# ---- the clone
trap - EXIT
clone=$work/recur
rev=$(git -C "$src" stash create 2>/dev/null || true)
git clone -q --shared "$src" "$clone"
if [ -n "$rev" ]; then
	git -C "$clone" checkout -q --detach "$rev"
	echo "readme_check: checking HEAD with the uncommitted changes of tracked files ($(git -C "$clone" rev-parse --short HEAD))"
fi

# ---- one script per block; the helpers below are defined in each
# q: a word bash reads back as the same string
q() { printf '%q' "$1"; }
cat >"$work/lib.sh" <<'EOF'
# __cpu: sets __cpu to the CPU time (user+sys, tenths of a second) of this shell's finished
# children: a command's cost apart from the machine's load. times must run in this shell, not
# in a $(...) subshell, whose children are others.
__cpu() {
	local u s
	times >"$__work/times"
	{ read -r _ _; read -r u s; } <"$__work/times"
	__cpu=$(( $(__tenths "$u") + $(__tenths "$s") ))
}
__tenths() { local m=${1%%m*} r=${1#*m}; r=${r%s}; echo $(( m * 600 + 10#${r%.*} * 10 + 10#${r#*.} / 100 )); }
__begin() { __cpu; __c0=$__cpu __t0=$SECONDS; printf '%s\n' "$1" >"$__work/running"; printf -- '--> %s:%s  %s\n' "$__readme" "$2" "$(head -n1 "$__work/cmds/$1")$( [ "$(wc -l <"$__work/cmds/$1")" -gt 0 ] && echo ' ...')"; }
__end() {
	local c=$1 rc=$2 t=$((SECONDS - __t0)) cpu
	__cpu
	cpu=$((__cpu - __c0))
	cpu="$((cpu / 10)).$((cpu % 10))"
	if [ "$rc" = 0 ]; then
		echo "    ok (${t}s, ${cpu}s CPU)"
		echo "$c ok $t $cpu" >>"$__work/results"
		return 0
	fi
	echo "    FAILED: exit $rc after ${t}s (${cpu}s CPU); its output ends:"
	tail -n 40 "$__work/logs/$c" | sed 's/^/    | /'
	echo "$c fail $t exit $rc" >>"$__work/results"
	exit 1
}
__skip() { printf -- '--> %s:%s  %s\n    skipped: %s\n' "$__readme" "$2" "$(head -n1 "$__work/cmds/$1")" "$3"; echo "$1 skip 0" >>"$__work/results"; }
EOF
out() { # out C: where command C's output goes
	if [ -n "${READMECHECK_VERBOSE:-}" ]; then echo "> >(tee $(q "$work/logs/$1")) 2>&1"; else echo ">$(q "$work/logs/$1") 2>&1"; fi
}
while read -r c b l; do
	f=$work/blocks/$b.sh
	[ -f "$f" ] || printf 'source %s\n' "$(q "$work/lib.sh")" >"$f"
	text=$(<"$work/cmds/$c")
	case ${action[$c]} in
	run) printf '__begin %s %s\n{ %s\n} </dev/null %s\n__end %s $?\n' "$c" "$l" "$text" "$(out "$c")" "$c" >>"$f" ;;
	env) printf '__begin %s %s\n( export %s\n%s\n) </dev/null %s\n__end %s $?\n' "$c" "$l" "${arg[$c]}" "$text" "$(out "$c")" "$c" >>"$f" ;;
	supply)
		dest=${arg[$c]}
		from=$data/$(basename "$dest")
		if [ -f "$from" ]; then
			printf '__begin %s %s\n{ echo supplied from %s; mkdir -p %s && cp %s %s\n} </dev/null %s\n__end %s $?\n' \
				"$c" "$l" "$(q "$from")" "$(q "$(dirname "$dest")")" "$(q "$from")" "$(q "$dest")" "$(out "$c")" "$c" >>"$f"
			echo "$c $l $from" >>"$work/supplied"
		else
			printf '__begin %s %s\n{ %s\n} </dev/null %s\n__end %s $?\n' "$c" "$l" "$text" "$(out "$c")" "$c" >>"$f"
		fi
		;;
	skip) printf '__skip %s %s %s\n' "$c" "$l" "$(q "${arg[$c]}")" >>"$f" ;;
	esac
done <"$work/index"

# ---- run
# shellcheck disable=SC2046 # one word per variable name
unset $(compgen -e | grep '^RECUR_' || true)
export __work=$work __readme=$readme
: >"$work/results"
t0=$SECONDS
child="" # timeout runs a block in its own process group: stop it with us
trap '[ -z "$child" ] || kill -TERM "$child" 2>/dev/null; echo "readme_check: stopped; the clone and the logs are in $work" >&2; exit 130' INT TERM
for ((b = 1; b <= block; b++)); do
	[ -f "$work/blocks/$b.sh" ] || continue
	(cd "$clone" && exec timeout -k 30 "$block_timeout" bash "$work/blocks/$b.sh") &
	child=$!
	wait "$child" && rc=0 || rc=$?
	child=""
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		c=$(cat "$work/running" 2>/dev/null || echo 0)
		echo "    FAILED: the block ran out of its ${block_timeout}s (READMECHECK_BLOCK_TIMEOUT); its output ends:"
		tail -n 40 "$work/logs/$c" | sed 's/^/    | /'
		echo "$c fail 0 timeout" >>"$work/results"
	fi
done
elapsed=$((SECONDS - t0))

# ---- the clone must be clean
dirty=$(git -C "$clone" status --porcelain)
if [ -n "$dirty" ]; then
	echo "readme_check: the README's commands left files in the repository (not in .gitignore) or changed tracked ones:"
	printf '%s\n' "$dirty" | sed 's/^/    /'
fi

# ---- summary
declare -A status
while read -r c s _; do status[$c]=$s; done <"$work/results"
ran=0 skipped=0 failed=0 notrun=0
for ((c = 1; c <= n; c++)); do
	case ${status[$c]:-} in ok) ran=$((ran + 1)) ;; skip) skipped=$((skipped + 1)) ;; fail) failed=$((failed + 1)) ;; *) notrun=$((notrun + 1)) ;; esac
done
echo
echo "readme_check: $n commands in $block blocks of $readme: $ran passed, $failed failed, $skipped skipped, $notrun not reached; $((elapsed / 60))m$((elapsed % 60))s"
declare -A lines # what a rule did -> the README lines it did it to
order=()
while read -r c b l; do
	case ${action[$c]} in
	env) what="ran with ${arg[$c]}" ;;
	skip) what="skipped: ${arg[$c]}" ;;
	*) continue ;;
	esac
	[ -n "${lines[$what]:-}" ] || order+=("$what")
	lines[$what]+=",$l"
done <"$work/index"
for what in "${order[@]}"; do echo "    $readme:${lines[$what]#,} $what"; done
[ ! -f "$work/supplied" ] || while read -r c l from; do echo "    $readme:$l not run: supplied from $from"; done <"$work/supplied"
if [ "$failed" -gt 0 ] || [ "$notrun" -gt 0 ] || [ -n "$dirty" ]; then
	echo "readme_check: FAILED; the clone and the logs are kept in $work"
	exit 1
fi
if [ -n "${READMECHECK_KEEP:-}" ]; then echo "readme_check: the clone and the logs are in $work"; else rm -rf "$work"; fi
