# Helpers shared by scripts/loadtest.sh and scripts/profile.sh: source it.
# Every process started through start_bg is stopped (SIGTERM, then waited
# for) by stop_all, which the callers run from an EXIT trap.

PGHOST_=127.0.0.1
PGPORT_=5432
PIDS=()
NAMES=()

log() { echo "$(basename "$0"): $*" >&2; }

# free_port prints a TCP port that is free on 127.0.0.1 right now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# fresh_db NAME drops and recreates database NAME and prints its URL.
fresh_db() {
	psql -h "$PGHOST_" -p "$PGPORT_" -d postgres -qX -v ON_ERROR_STOP=1 \
		-c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" -c "CREATE DATABASE \"$1\"" >/dev/null
	echo "postgres://$PGHOST_:$PGPORT_/$1?sslmode=disable"
}

# start_bg NAME LOGFILE CMD...: runs CMD in the background, output to LOGFILE.
start_bg() {
	local name=$1 logf=$2
	shift 2
	"$@" >>"$logf" 2>&1 &
	PIDS+=($!)
	NAMES+=("$name")
	log "started $name (pid $!), log $logf"
}

# wait_http NAME URL [SECONDS]: waits until URL answers 2xx.
wait_http() {
	local name=$1 url=$2 secs=${3:-60}
	for _ in $(seq 1 $((secs * 5))); do
		if curl -sf -o /dev/null "$url"; then return 0; fi
		sleep 0.2
	done
	log "$name did not become ready at $url within ${secs}s"
	return 1
}

# stop_all stops every process start_bg started, newest first, and waits
# for each (SIGKILL after 30 s).
stop_all() {
	local i pid
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PIDS[$i]}
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			if kill -0 "$pid" 2>/dev/null; then
				log "${NAMES[$i]} (pid $pid) did not stop in 30s: SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
			fi
		fi
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
	NAMES=()
}
