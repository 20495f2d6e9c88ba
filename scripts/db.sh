#!/usr/bin/env bash
# Makes sure a local PostgreSQL answers on 127.0.0.1:5432 with trust auth for
# the current user, and that the orderflow database exists. On a fresh Debian
# machine it installs PostgreSQL with apt and starts a cluster. Idempotent.
set -euo pipefail

HOST=127.0.0.1
PORT=5432
DB=${ORDERFLOW_DB:-orderflow}
ME=$(id -un)

log() { echo "db.sh: $*" >&2; }

answers() { pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null; }

as_postgres() {
	if [ "$ME" = postgres ]; then "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
}

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
	log "PostgreSQL is not installed; installing it with apt"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq postgresql postgresql-client >/dev/null
fi

if ! answers; then
	ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
	if [ -z "$ver" ]; then
		ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
		log "creating cluster $ver/main"
		pg_createcluster "$ver" main >/dev/null
	fi
	log "starting PostgreSQL $ver"
	pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
	for _ in $(seq 1 60); do answers && break; sleep 0.5; done
	answers || { log "PostgreSQL did not start on $HOST:$PORT"; exit 1; }
fi

# A fresh Debian cluster asks TCP clients for a password and has no role for
# us: allow trust on loopback and create a superuser role named like us.
if ! psql -h "$HOST" -p "$PORT" -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
	log "configuring loopback trust auth and role $ME"
	ver=$(ls /etc/postgresql | sort -V | tail -n 1)
	hba=/etc/postgresql/$ver/main/pg_hba.conf
	if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
		sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
	fi
	as_postgres psql -q -c "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ME') THEN CREATE ROLE \"$ME\" SUPERUSER LOGIN; END IF; END\$\$;"
	pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
	sleep 1
fi

if ! psql -h "$HOST" -p "$PORT" -d postgres -Atqc "select 1 from pg_database where datname = '$DB'" | grep -q 1; then
	log "creating database $DB"
	psql -h "$HOST" -p "$PORT" -d postgres -qc "CREATE DATABASE \"$DB\""
fi
sync_commit=$(psql -h "$HOST" -p "$PORT" -d postgres -Atqc 'show synchronous_commit')
[ "$sync_commit" = on ] || log "WARNING: synchronous_commit is $sync_commit on the server; orderflow sets it on for its own sessions"
log "PostgreSQL ready at $HOST:$PORT, database $DB"
