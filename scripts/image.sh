#!/usr/bin/env bash
# Builds orderflow's container image from deploy/Dockerfile with whatever the
# machine has: `docker build` when a Docker daemon answers, otherwise buildah
# (installed with apt when missing) in chroot isolation on vfs storage, which
# needs no daemon. The binary is compiled here on the host (static, CGO off,
# -trimpath, version stamped) and copied into a `FROM scratch` image with the
# host's CA bundle and the licence texts of everything linked in.
#
# IMAGE (default orderflow) and IMAGE_TAG (default: git describe) name it.
# The last line printed is the image reference, its size and the builder:
#   image orderflow:v1.2.3 size 35128832 bytes (35.1 MB) built by buildah
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-orderflow}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
IMAGE_TAG=${IMAGE_TAG:-$VERSION}
GO=${GO:-go}
ref="$IMAGE:$IMAGE_TAG"

log() { echo "image.sh: $*" >&2; }

ctx=$(mktemp -d -t orderflow-image-XXXXXX)
trap 'rm -rf "$ctx"' EXIT

t0=$(date +%s)
CGO_ENABLED=0 $GO build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$ctx/orderflow" ./cmd/orderflow
log "built the static binary ($VERSION) in $(($(date +%s) - t0))s"

bundle=/etc/ssl/certs/ca-certificates.crt
if [ ! -s "$bundle" ]; then
	log "no CA bundle at $bundle; installing ca-certificates with apt"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq ca-certificates >/dev/null
fi
cp "$bundle" "$ctx/ca-certificates.crt"

# Licence notices: Go's own (the standard library is linked in) and those of
# every module the binary links.
mkdir -p "$ctx/licenses/go"
cp "$($GO env GOROOT)/LICENSE" "$ctx/licenses/go/"
while read -r path dir; do
	[ -n "$dir" ] || continue
	found=0
	for f in "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING* "$dir"/NOTICE*; do
		[ -f "$f" ] || continue
		mkdir -p "$ctx/licenses/$path"
		cp "$f" "$ctx/licenses/$path/"
		found=1
	done
	[ "$found" = 1 ] || log "WARNING: no licence file found for $path in $dir"
done < <(CGO_ENABLED=0 $GO list -deps -f '{{with .Module}}{{if .Version}}{{.Path}} {{.Dir}}{{end}}{{end}}' ./cmd/orderflow | sort -u)

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
	builder=docker
	docker build -q -f deploy/Dockerfile --build-arg VERSION="$VERSION" -t "$ref" "$ctx" >/dev/null
	size=$(docker image inspect --format '{{.Size}}' "$ref")
else
	builder=buildah
	if ! command -v buildah >/dev/null 2>&1; then
		log "no Docker daemon and no buildah; installing buildah with apt"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq && apt-get install -y -qq --no-install-recommends buildah >/dev/null
	fi
	buildah --storage-driver vfs bud --quiet --isolation chroot --timestamp 0 \
		-f deploy/Dockerfile --build-arg VERSION="$VERSION" -t "$ref" "$ctx" >/dev/null
	size=$(buildah --storage-driver vfs inspect --type image --format '{{.Docker.Size}}' "$ref" 2>/dev/null || true)
	if ! [[ "$size" =~ ^[0-9]+$ ]] || [ "$size" = 0 ]; then
		# buildah does not always fill in the size: sum the layers' files.
		size=$(du -sb "$ctx/orderflow" "$ctx/ca-certificates.crt" "$ctx/licenses" | awk '{s+=$1} END {print s}')
	fi
fi
log "built $ref with $builder in $(($(date +%s) - t0))s"
echo "image $ref size $size bytes ($(awk -v s="$size" 'BEGIN{printf "%.1f MB", s/1e6}')) built by $builder"
