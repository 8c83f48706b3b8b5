#!/usr/bin/env bash
# Cluster test: a real Recur cluster in Docker (deploy/compose), faults
# injected with the Docker CLI, and assertions on the coordinator's metrics
# (never its logs, which are for people).
#
#   1. coordinator + 3 workers train the char LM            members=3, step rising
#   2. docker kill a worker                                  members=2, step rising
#   3. start another worker                                  members=3, step rising
#   4. docker kill the coordinator, start it again           recur_resume_step > 0,
#                                                            step continues from the checkpoint
#   5. docker network disconnect a worker                    members=2 (evicted), step rising
#      docker network connect it again (same IP)             members=3 (rejoined), step rising
#   6. compose down (volume kept), up again                    resumes from the checkpoint; fresh
#                                                            workers get the state from the coordinator
#
# Prints a timeline with how long each recovery took. Every wait polls with
# a timeout; the compose project is removed (down -v) on any exit.
#
# Environment: IMAGE (recur:latest), SKIP_IMAGE=1 (do not run `make image`),
# WAIT_S (90: the limit of each wait), TOTAL_S (540: the whole test),
# RECUR_TEXT (the corpus; default: Debian's fortunes, else tinyshakespeare).
set -euo pipefail

cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-recur:latest}
WAIT_S=${WAIT_S:-90}
TOTAL_S=${TOTAL_S:-540}
PROJECT=recurtest$$
WORK=$(mktemp -d /tmp/recur-cluster-test.XXXXXX)
T0=$SECONDS
TIMELINE=()

log() { printf '[%4ds] %s\n' $((SECONDS - T0)) "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
mark() { TIMELINE+=("$(printf '%4ds  %s' $((SECONDS - T0)) "$*")"); log "$*"; }

# ---- compose command: `docker compose` where the plugin exists, else docker-compose
if docker compose version >/dev/null 2>&1; then
	DC=(docker compose)
elif command -v docker-compose >/dev/null; then
	DC=(docker-compose)
else
	die "neither 'docker compose' nor docker-compose is installed"
fi
COMPOSE=("${DC[@]}" -p "$PROJECT" -f deploy/compose/docker-compose.yml -f "$WORK/test.yml")

dump_logs() {
	local c
	for c in $(containers coordinator) $(containers worker); do
		echo "---- logs of $(docker inspect -f '{{.Name}}' "$c") (last 40 lines)" >&2
		docker logs --tail 40 "$c" 2>&1 | cut -c1-300 >&2 || true
	done
}

cleanup() {
	local rc=$?
	trap - EXIT
	if [ "$rc" -ne 0 ]; then dump_logs; fi
	"${COMPOSE[@]}" down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'log "FAIL: line $LINENO: $BASH_COMMAND"' ERR

# containers SERVICE [all]: container ids of a compose service (running ones
# unless "all"), found by the labels both compose implementations set.
containers() {
	local all=()
	[ "${2:-}" = all ] && all=(-a)
	docker ps -q "${all[@]}" --filter "label=com.docker.compose.project=$PROJECT" \
		--filter "label=com.docker.compose.service=$1"
}

# metric NAME: the coordinator's gauge as an integer (fails if unreachable).
metric() {
	curl -sf --max-time 2 "http://127.0.0.1:$METRICS_PORT/metrics" |
		awk -v n="$1" '$1 == n { printf "%d\n", $2; found = 1 } END { exit !found }'
}

# wait_for DESCRIPTION COMMAND...: polls COMMAND every 0.5 s until it
# succeeds; fails after WAIT_S or when the whole test runs out of time.
# Sets WAITED to the seconds it took.
wait_for() {
	local what=$1 start=$SECONDS
	shift
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS - start > WAIT_S)); then die "timed out after ${WAIT_S}s waiting for: $what"; fi
		if ((SECONDS - T0 > TOTAL_S)); then die "the test ran past ${TOTAL_S}s waiting for: $what"; fi
		sleep 0.5
	done
	WAITED=$((SECONDS - start))
}

members_are() { [ "$(metric recur_members)" -eq "$1" ]; }
step_at_least() { [ "$(metric recur_step)" -ge "$1" ]; }

# advancing N: waits until training runs N steps past the current step.
advancing() {
	local s
	wait_for "metrics" metric recur_step
	s=$(metric recur_step)
	wait_for "step $((s + $1)) (from $s)" step_at_least $((s + $1))
}

# started_since T: the coordinator serving metrics is a process started at
# or after Unix second T (its logs are for people; the metrics are typed).
started_since() { [ "$(metric recur_coordinator_start_time_seconds)" -ge "$1" ]; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# free_subnet: a /24 in 10.200-250.x.0 that no Docker network or host route uses.
free_subnet() {
	local used i net
	used=$( (docker network inspect $(docker network ls -q) -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' 2>/dev/null; ip -4 route 2>/dev/null) | tr ' ' '\n')
	for i in $(seq 0 50); do
		net="10.$((200 + i)).$(($$ % 250)).0/24"
		grep -qF "${net%.0/24}." <<<"$used" || grep -qxF "$net" <<<"$used" || { echo "$net"; return; }
	done
	die "no free subnet for the test network"
}

# ---- image
if [ "${SKIP_IMAGE:-0}" != 1 ]; then
	log "building $IMAGE (make image)"
	make image IMAGE="$IMAGE" >"$WORK/image.log" 2>&1 || { tail -30 "$WORK/image.log"; die "make image failed"; }
fi
docker image inspect "$IMAGE" >/dev/null || die "no image $IMAGE (run make image)"
mark "image $IMAGE: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}')"

# ---- corpus, key, small fast job, test network with a fixed subnet
if [ -z "${RECUR_TEXT:-}" ]; then
	RECUR_TEXT=$WORK/corpus.txt
	if [ -d /usr/share/games/fortunes ]; then
		find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' | sort | xargs cat >"$RECUR_TEXT"
	elif [ -f ../shared/data/tinyshakespeare.txt ]; then
		cp ../shared/data/tinyshakespeare.txt "$RECUR_TEXT"
	else
		die "no corpus: set RECUR_TEXT, or install fortunes (apt-get install fortunes)"
	fi
fi
chmod 644 "$RECUR_TEXT"
RECUR_ENV_FILE=$WORK/cluster.env
{
	echo "RECUR_CLUSTER_KEY=$(docker run --rm "$IMAGE" keygen)"
	# A small model so the test runs fast on 2 cores; checkpoints often.
	echo "RECUR_MODEL_HIDDEN=64"
	echo "RECUR_MODEL_LAYERS=1"
	echo "RECUR_MODEL_EMBED=16"
	echo "RECUR_DATA_SEQ=32"
	echo "RECUR_DATA_BATCH=12"
	echo "RECUR_TRAIN_CHECKPOINT_EVERY=10"
	echo "RECUR_TRAIN_VALIDATE_EVERY=100000"
	echo "RECUR_TRAIN_MINUTES=15"
	echo "RECUR_TRAIN_THREADS=1"
} >"$RECUR_ENV_FILE"
# A fixed subnet lets the test reconnect a worker with the IP it had, as
# after a real network partition (the worker's gossip advertises that IP).
cat >"$WORK/test.yml" <<EOF
networks:
  default:
    ipam:
      config:
        - subnet: $(free_subnet)
EOF
METRICS_PORT=$(free_port)
export RECUR_TEXT RECUR_ENV_FILE RECUR_IMAGE=$IMAGE RECUR_METRICS_PORT=$METRICS_PORT
log "compose: ${DC[*]} -p $PROJECT; corpus $RECUR_TEXT ($(wc -c <"$RECUR_TEXT") bytes); metrics on 127.0.0.1:$METRICS_PORT"

# ---- 1. coordinator + 3 workers
"${COMPOSE[@]}" up -d --scale worker=3 >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; die "compose up failed"; }
mark "compose up: coordinator + 3 workers"
wait_for "3 members" members_are 3
advancing 20
mark "training with 3 workers: step $(metric recur_step), generation $(metric recur_generation) (${WAITED}s for 20 steps)"

# ---- 2. kill a worker
read -r -a workers <<<"$(containers worker | tr '\n' ' ')"
[ "${#workers[@]}" -eq 3 ] || die "want 3 running workers, have ${#workers[@]}"
victim=${workers[0]}
gen=$(metric recur_generation)
t=$SECONDS
docker kill "$victim" >/dev/null
mark "docker kill worker ${victim:0:12}"
wait_for "members 2 after the kill" members_are 2
advancing 10
[ "$(metric recur_generation)" -gt "$gen" ] || die "no new generation after the kill"
mark "training goes on with 2 workers at step $(metric recur_step), generation $(metric recur_generation): recovered in $((SECONDS - t))s"
[ "$(docker inspect -f '{{.State.Running}}' "$victim")" = false ] || die "the killed worker was restarted"

# ---- 3. another worker joins
docker rm -f "$victim" >/dev/null
t=$SECONDS
"${COMPOSE[@]}" up -d --no-recreate --scale worker=3 >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; die "compose up (new worker) failed"; }
mark "started a new worker"
wait_for "members 3 after the new worker" members_are 3
advancing 10
mark "new worker joined, 3 workers at step $(metric recur_step): took $((SECONDS - t))s"

# ---- 4. kill and restart the coordinator
coord=$(containers coordinator)
before=$(metric recur_step)
since=$(date +%s)
t=$SECONDS
docker kill "$coord" >/dev/null
mark "docker kill coordinator at step $before"
sleep 2 # the workers notice the coordinator is gone and retry
docker start "$coord" >/dev/null
mark "docker start coordinator"
wait_for "the restarted coordinator's metrics" started_since "$since"
ckpt=$(metric recur_resume_step)
[ -n "$ckpt" ] && [ "$ckpt" -gt 0 ] || die "the restarted coordinator resumed from no checkpoint (recur_resume_step=$ckpt)"
wait_for "members 3 after the restart" members_are 3
wait_for "step past the checkpoint ($ckpt)" step_at_least $((ckpt + 1))
advancing 10
after=$(metric recur_step)
[ "$after" -gt "$ckpt" ] || die "step $after did not continue from checkpoint $ckpt"
mark "coordinator resumed from checkpoint step $ckpt (killed at $before), 3 workers at step $after: took $((SECONDS - t))s"

# ---- 5. partition a worker off the network, then heal
read -r -a workers <<<"$(containers worker | tr '\n' ' ')"
victim=${workers[1]}
net=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "$victim")
ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$victim")
gen=$(metric recur_generation)
t=$SECONDS
docker network disconnect "$net" "$victim"
mark "docker network disconnect worker ${victim:0:12} ($ip)"
wait_for "members 2 after the partition" members_are 2
evicted=$((SECONDS - t))
advancing 10
[ "$(metric recur_generation)" -gt "$gen" ] || die "no new generation after the eviction"
mark "worker evicted in ${evicted}s; 2 workers train on at step $(metric recur_step), generation $(metric recur_generation)"
t=$SECONDS
docker network connect --ip "$ip" "$net" "$victim"
mark "docker network connect worker ${victim:0:12} ($ip)"
wait_for "members 3 after reconnecting" members_are 3
advancing 10
mark "worker rejoined, 3 workers at step $(metric recur_step), generation $(metric recur_generation): took $((SECONDS - t))s"

# ---- 6. take the whole cluster down (keeping the volume) and up again: the
# coordinator resumes from its volume and sends the new workers its
# checkpoint state.
before=$(metric recur_step)
since=$(date +%s)
t=$SECONDS
"${COMPOSE[@]}" down --timeout 10 >/dev/null 2>&1
[ -z "$(containers coordinator all)$(containers worker all)" ] || die "compose down left containers"
mark "compose down (the run volume stays) at step $before"
"${COMPOSE[@]}" up -d --scale worker=3 >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; die "compose up (resume) failed"; }
wait_for "the coordinator's metrics after the full restart" started_since "$since"
ckpt=$(metric recur_resume_step)
[ "$ckpt" -gt 0 ] || die "the whole cluster restarted from no checkpoint (recur_resume_step=$ckpt)"
wait_for "members 3 after the full restart" members_are 3
wait_for "step past the checkpoint ($ckpt)" step_at_least $((ckpt + 1))
advancing 10
mark "whole cluster resumed from checkpoint step $ckpt (stopped at $before), 3 workers at step $(metric recur_step): took $((SECONDS - t))s"

[ "$(metric recur_rejected_peers_total)" -eq 0 ] || die "the coordinator rejected peers: recur_rejected_peers_total=$(metric recur_rejected_peers_total)"

echo
echo "cluster test passed in $((SECONDS - T0))s ($("${DC[@]}" version --short 2>/dev/null || echo "${DC[*]}")):"
printf '  %s\n' "${TIMELINE[@]}"
