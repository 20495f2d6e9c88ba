#!/usr/bin/env bash
# Runs the long forms of the crash and fault tests in chaos/ (SIGKILL under
# load, PostgreSQL stopped and restarted, connections cut at COMMIT, Kafka
# failing, three instances, a broker gone for one of two instances while they
# change the same orders) and appends their numbers to chaos/RESULTS.md.
# CHAOS_RUN selects tests (a go test -run pattern); CHAOS_RACE=1 builds the
# killed server binary with -race too.
set -euo pipefail
cd "$(dirname "$0")/.."

RESULTS=${CHAOS_RESULTS:-$PWD/chaos/RESULTS.md}
RUN=${CHAOS_RUN:-.}
GO=${GO:-go}

if [ ! -f "$RESULTS" ]; then
	cat >"$RESULTS" <<'HDR'
# Crash and fault runs

Written by `make chaos` (scripts/chaos.sh): one section per run, one row per test. "lost" counts
acknowledged orders (or status versions) missing from PostgreSQL, "duplicated" ids stored more than
once or with doubled items, "unpublished" committed versions (of every row, acknowledged or not)
never seen on the topic, "out of order" orders a consumer deduping on ce_id would see with a gap.
HDR
fi
{
	echo
	echo "## $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet 2>/dev/null || echo '+dirty'), $(nproc) CPUs"
	echo
	echo "| when | test | form | numbers |"
	echo "|---|---|---|---|"
} >>"$RESULTS"

log=$(mktemp -t orderflow-chaos-XXXXXX.log)
set +e
CHAOS_LONG=1 CHAOS_RESULTS="$RESULTS" $GO test -race -count=1 -timeout 30m -v -run "$RUN" ./chaos/ 2>&1 | tee "$log" | grep -E '^(=== RUN|--- |PASS|FAIL|ok|\s+\S+_test.go:[0-9]+: (RESULT|.*fail))'
rc=${PIPESTATUS[0]}
set -e
echo "chaos: full log in $log; numbers appended to $RESULTS"
exit "$rc"
