#!/usr/bin/env bash
# Installs, with apt when missing, the tools the deployment and rollout tests
# run: promtool (Debian package prometheus; only the binary is used, no
# Prometheus server is started) and HAProxy (the rolling-restart test's
# balancer; the package's own service is not started). buildah is installed
# by scripts/image.sh when it needs it. Idempotent.
set -euo pipefail

log() { echo "tools.sh: $*" >&2; }

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]} with apt"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# policy-rc.d 101: the packages' services are not started on install.
	prc=/usr/sbin/policy-rc.d
	had_prc=0
	[ -e "$prc" ] && had_prc=1
	[ $had_prc = 1 ] || { printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod +x "$prc"; }
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	[ $had_prc = 1 ] || rm -f "$prc"
fi
log "promtool $(promtool --version 2>&1 | awk 'NR==1{print $3}'), $(/usr/sbin/haproxy -v 2>&1 | awk 'NR==1{print $1, $3}')"
