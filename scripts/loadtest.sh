#!/usr/bin/env bash
# make loadtest: measures orderflow, the naive baseline and the no-op
# ceiling one after another with the same settings, reconciles the ones that
# store, and writes loadtest/out/<runid>.json, <runid>-*.png and the servers'
# logs. orderflow and the baseline each publish to a Kafka-protocol broker
# in its own process (bin/benchtargets -target broker), as in production,
# so the CPU each server reports is its own; the load test reports the CPU
# of the PostgreSQL server (postmaster and backends, from /proc) beside it.
# Everything listens on 127.0.0.1 (free ports); every server started here is
# stopped on exit.
#
# Environment (all optional):
#   DURATION=10s        measured time of each main run
#   CONNS=64            closed-loop connections
#   SCENARIO=orders     orders | duplicates | batches | mix | status | batcher (the
#                       no-op answers only single orders meaningfully)
#   TARGETS="orderflow baseline noop"   which to measure, in this order
#   SWEEP=1000,2000,4000  open-loop offered rates after each main run ("" to skip)
#   SWEEP_DURATION=3s   measured time of each sweep run
#   LOADTEST_ARGS=      extra flags for bin/loadtest
#   ORDERFLOW_ARGS=     extra flags for bin/orderflow
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
SCENARIO=${SCENARIO:-orders}
TARGETS=${TARGETS:-orderflow baseline noop}
SWEEP=${SWEEP-1000,2000,4000}
SWEEP_DURATION=${SWEEP_DURATION:-3s}
OUT=loadtest/out
mkdir -p "$OUT" bin

bash scripts/db.sh
go build -o bin/orderflow ./cmd/orderflow
go build -o bin/loadtest ./cmd/loadtest
go build -o bin/benchtargets ./cmd/benchtargets

RUNID=$(date -u +%Y%m%dT%H%M%S)-$(printf '%04x' $((RANDOM % 65536)))
trap stop_all EXIT
trap 'exit 130' INT TERM

# start_broker NAME starts a broker process for target NAME (topic orders,
# 4 partitions, as the embedded one) and sets kafka to its address. (Not
# in $(…): start_bg must record the pid in this shell for stop_all.)
start_broker() {
	local admin
	kafka=127.0.0.1:$(free_port)
	admin=$(free_port)
	start_bg "$1-broker" "$OUT/$RUNID-$1-broker.log" ./bin/benchtargets -target broker -listen "$kafka" \
		-admin-listen "127.0.0.1:$admin" -kafka-topic orders -partitions 4
	wait_http "$1-broker" "http://127.0.0.1:$admin/healthz"
}

specs=()
opts=()
for t in $TARGETS; do
	port=$(free_port)
	admin=$(free_port)
	case $t in
	orderflow)
		db=$(fresh_db orderflow_lt)
		start_broker orderflow
		./bin/orderflow seed-demo-catalog -store.database-url "$db" >/dev/null 2>"$OUT/$RUNID-orderflow.log"
		# shellcheck disable=SC2086 # ORDERFLOW_ARGS is a list of flags
		start_bg orderflow "$OUT/$RUNID-orderflow.log" ./bin/orderflow -listen "127.0.0.1:$port" \
			-admin-listen "127.0.0.1:$admin" -store.database-url "$db" -kafka.brokers "$kafka" ${ORDERFLOW_ARGS:-}
		wait_http orderflow "http://127.0.0.1:$admin/readyz"
		opts+=(-target-opt "orderflow.admin=http://127.0.0.1:$admin" -target-opt "orderflow.database-url=$db"
			-target-opt "orderflow.kafka-brokers=$kafka" -target-opt orderflow.kafka-topic=orders)
		;;
	baseline)
		db=$(fresh_db orderflow_lt_baseline)
		start_broker baseline
		start_bg baseline "$OUT/$RUNID-baseline.log" ./bin/benchtargets -target baseline -listen "127.0.0.1:$port" \
			-admin-listen "127.0.0.1:$admin" -database-url "$db" -kafka-brokers "$kafka"
		wait_http baseline "http://127.0.0.1:$admin/healthz"
		opts+=(-target-opt "baseline.admin=http://127.0.0.1:$admin" -target-opt "baseline.database-url=$db"
			-target-opt "baseline.kafka-brokers=$kafka" -target-opt baseline.kafka-topic=orders)
		;;
	noop)
		start_bg noop "$OUT/$RUNID-noop.log" ./bin/benchtargets -target noop -listen "127.0.0.1:$port" -admin-listen "127.0.0.1:$admin"
		wait_http noop "http://127.0.0.1:$admin/healthz"
		opts+=(-target-opt "noop.admin=http://127.0.0.1:$admin" -target-opt noop.reconcile=false)
		;;
	*)
		log "unknown target $t (want orderflow, baseline or noop)"
		exit 2
		;;
	esac
	specs+=("$t=http://127.0.0.1:$port")
done

targets=$(IFS=,; echo "${specs[*]}")
log "run $RUNID: $targets, scenario $SCENARIO, $CONNS connections, $DURATION each${SWEEP:+, sweep $SWEEP at $SWEEP_DURATION each}"
rc=0
# shellcheck disable=SC2086 # LOADTEST_ARGS is a list of flags
./bin/loadtest -targets "$targets" "${opts[@]}" -scenario "$SCENARIO" -conns "$CONNS" -duration "$DURATION" \
	-sweep "$SWEEP" -sweep-duration "$SWEEP_DURATION" -run-id "$RUNID" -out "$OUT/$RUNID.json" ${LOADTEST_ARGS:-} || rc=$?
stop_all
log "server logs: $OUT/$RUNID-*.log"
exit $rc
