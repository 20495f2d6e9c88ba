#!/usr/bin/env bash
# make profile: starts a server on a fresh database, drives load at it in the
# background and captures from its admin port, into
# pprof/out/<date>_<scenario>_<commit>.*:
#   .cpu.pprof     /debug/pprof/profile?seconds=PROFILE_SECONDS
#   .trace.out     /debug/pprof/trace?seconds=TRACE_SECONDS
#   .heap.pprof    .allocs.pprof  .mutex.pprof  .block.pprof  .goroutine.pprof
#   .*.svg         call graphs (go tool pprof -svg; graphviz from apt)
#   .loadtest.txt  the load test's summary (with reconciliation)
# See pprof/README.md for how to read them.
#
# Environment (all optional):
#   TARGET=orderflow     orderflow | baseline (the naive server, bench/baseline)
#   SCENARIO=orders      orders | duplicates | batches | mix
#   CONNS=64             closed-loop connections
#   PROFILE_SECONDS=10   CPU profile length
#   TRACE_SECONDS=5      execution trace length
#   ORDERFLOW_ARGS=      extra flags for bin/orderflow
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

TARGET=${TARGET:-orderflow}
SCENARIO=${SCENARIO:-orders}
CONNS=${CONNS:-64}
PROFILE_SECONDS=${PROFILE_SECONDS:-10}
TRACE_SECONDS=${TRACE_SECONDS:-5}
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo nocommit)
OUT=pprof/out
PREFIX=$OUT/$(date +%F)_${SCENARIO}$([ "$TARGET" = orderflow ] || echo "-$TARGET")_$COMMIT
mkdir -p "$OUT" bin

if ! command -v dot >/dev/null 2>&1; then
	log "graphviz (dot) is missing: installing it with apt for the SVG call graphs"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; } ||
		log "could not install graphviz: profiles are captured, SVGs skipped"
fi

bash scripts/db.sh
go build -o bin/orderflow ./cmd/orderflow
go build -o bin/loadtest ./cmd/loadtest
go build -o bin/benchtargets ./cmd/benchtargets

trap stop_all EXIT
trap 'exit 130' INT TERM
port=$(free_port)
admin=$(free_port)
kafka=127.0.0.1:$(free_port)
case $TARGET in
orderflow)
	db=$(fresh_db orderflow_prof)
	bin=bin/orderflow
	./bin/orderflow seed-demo-catalog -store.database-url "$db" >/dev/null 2>"$PREFIX.server.log"
	# shellcheck disable=SC2086
	start_bg orderflow "$PREFIX.server.log" ./bin/orderflow -listen "127.0.0.1:$port" -admin-listen "127.0.0.1:$admin" \
		-store.database-url "$db" -kafka.embedded-addr "$kafka" -pprof.mutex-fraction 100 -pprof.block-rate 100000 ${ORDERFLOW_ARGS:-}
	wait_http orderflow "http://127.0.0.1:$admin/readyz"
	;;
baseline)
	db=$(fresh_db orderflow_prof_baseline)
	bin=bin/benchtargets
	start_bg baseline "$PREFIX.server.log" ./bin/benchtargets -target baseline -listen "127.0.0.1:$port" \
		-admin-listen "127.0.0.1:$admin" -database-url "$db" -embedded-kafka-addr "$kafka"
	wait_http baseline "http://127.0.0.1:$admin/healthz"
	;;
*)
	log "TARGET=$TARGET: want orderflow or baseline"
	exit 2
	;;
esac

# Load long enough to cover a 2 s warm-up, the CPU profile, the trace and
# the snapshots; bounded by -duration.
load=$((2 + PROFILE_SECONDS + TRACE_SECONDS + 5))
start_bg loadtest "$PREFIX.loadtest.txt" ./bin/loadtest -target "http://127.0.0.1:$port" -admin "http://127.0.0.1:$admin" \
	-database-url "$db" -kafka-brokers "$kafka" -scenario "$SCENARIO" -conns "$CONNS" -duration "${load}s" \
	-out "$PREFIX.loadtest.json"
loadpid=${PIDS[-1]}
sleep 2

base=http://127.0.0.1:$admin/debug/pprof
log "capturing a ${PROFILE_SECONDS}s CPU profile"
curl -sf "$base/profile?seconds=$PROFILE_SECONDS" -o "$PREFIX.cpu.pprof"
log "capturing a ${TRACE_SECONDS}s execution trace"
curl -sf "$base/trace?seconds=$TRACE_SECONDS" -o "$PREFIX.trace.out"
for p in heap allocs mutex block goroutine; do
	curl -sf "$base/$p" -o "$PREFIX.$p.pprof"
done
log "waiting for the load test to finish and reconcile"
rc=0
wait "$loadpid" || rc=$?

if command -v dot >/dev/null 2>&1; then
	svg() { # svg KIND [pprof flags]: an SVG call graph, or a note when the profile is empty
		local kind=$1
		shift
		if go tool pprof -svg "$@" "$bin" "$PREFIX.$kind.pprof" >"$PREFIX.$kind.svg" 2>"$PREFIX.$kind.svg.err"; then
			rm -f "$PREFIX.$kind.svg.err"
		else
			log "no SVG for $kind: $(tail -n 1 "$PREFIX.$kind.svg.err")"
			rm -f "$PREFIX.$kind.svg" "$PREFIX.$kind.svg.err"
		fi
	}
	svg cpu
	svg heap -sample_index=inuse_space
	svg allocs -sample_index=alloc_space
	svg mutex
	svg block
fi
stop_all
cat "$PREFIX.loadtest.txt"
log "profiles in $OUT:"
ls -1 "$PREFIX".* >&2
exit $rc
