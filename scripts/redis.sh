#!/usr/bin/env bash
# Makes sure a Redis answers on 127.0.0.1:6379 for the shared rate-limit
# tests (ORDERFLOW_TEST_REDIS_URL overrides the address the tests use; this
# script only manages the local default). Installs redis-server with apt when
# it is missing and starts it daemonized when nothing answers. Idempotent.
set -euo pipefail

HOST=127.0.0.1
PORT=6379

log() { echo "redis.sh: $*" >&2; }

answers() {
	if command -v redis-cli >/dev/null 2>&1; then
		[ "$(redis-cli -h "$HOST" -p "$PORT" ping 2>/dev/null)" = PONG ]
	else
		# No client installed: speak RESP over bash's /dev/tcp.
		exec 3<>"/dev/tcp/$HOST/$PORT" 2>/dev/null || return 1
		printf 'PING\r\n' >&3
		local reply
		read -r -t 2 reply <&3 || true
		exec 3>&-
		[ "${reply%$'\r'}" = "+PONG" ]
	fi
}

if answers; then
	log "Redis answers at $HOST:$PORT"
	exit 0
fi

if ! command -v redis-server >/dev/null 2>&1; then
	log "redis-server is not installed; installing it with apt"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq redis-server >/dev/null
fi

log "starting redis-server on $HOST:$PORT"
redis-server --bind "$HOST" --port "$PORT" --daemonize yes --save '' --appendonly no \
	--logfile /tmp/orderflow-redis.log >/dev/null
for _ in $(seq 1 50); do answers && break; sleep 0.1; done
answers || { log "Redis did not start on $HOST:$PORT (see /tmp/orderflow-redis.log)"; exit 1; }
log "Redis ready at $HOST:$PORT"
