#!/usr/bin/env bash
# Build the OpenHands server from PyPI (openhands-ai, pinned) as a local image, FROM the
# local base image airlock/debian:13 (no registry). It is NOT the official OpenHands image.
#
#   tools/realserver/build.sh                 build airlock/openhands-pypi:<recipe> and :latest
#   tools/realserver/build.sh --save FILE     also write a `docker save` archive of both tags
#                                             to FILE and the recipe tag to FILE.tag (kept
#                                             while FILE.tag names the current recipe)
#
# pip inside the build must reach PyPI through this host's HTTPS interception, so the
# build host's CA bundle is handed to the build stage as a build-context file (it never
# reaches the final image): AIRLOCK_BUILD_CA_BUNDLE, default the Debian system bundle.
#
# The image is rebuilt only when its recipe (this script, Dockerfile, constraints.txt,
# entrypoint.sh, the pinned version, the base image) changes; the recipe hash is the image tag and the label airlock.recipe.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=airlock/openhands-pypi
version=1.11.0
base=airlock/debian:13
ca=${AIRLOCK_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
save=""
if [ "${1:-}" = "--save" ]; then save=${2:?--save needs a file name}; fi

docker image inspect "$base" >/dev/null 2>&1 || {
  echo "base image $base is missing: build it with tools/testbed/build-images.sh (AIRLOCK_REQUIRE_DEBIAN13=1)" >&2; exit 1; }

recipe=$( { cat "$here/build.sh" "$here/Dockerfile" "$here/constraints.txt" "$here/entrypoint.sh"; echo "$version";
            docker image inspect -f '{{ .Id }}' "$base"; } | sha256sum | cut -c1-16)
have=$(docker image inspect -f '{{ index .Config.Labels "airlock.recipe" }}' "$image:latest" 2>/dev/null || true)
if [ "$have" = "$recipe" ] && docker image inspect "$image:$recipe" >/dev/null 2>&1; then
  echo "$image:$recipe is current"
else
  [ -r "$ca" ] || { echo "CA bundle $ca is not readable: set AIRLOCK_BUILD_CA_BUNDLE" >&2; exit 1; }
  ctx=$(mktemp -d "${TMPDIR:-/tmp}/openhands-pypi.XXXXXX")
  trap 'rm -rf "$ctx"' EXIT
  cp "$here/Dockerfile" "$here/constraints.txt" "$here/entrypoint.sh" "$ctx/"
  cp "$ca" "$ctx/build-ca.crt"
  echo "building $image:$recipe (openhands-ai $version from PyPI) ..."
  start=$(date +%s)
  DOCKER_BUILDKIT=0 docker build --build-arg "RECIPE=$recipe" --build-arg "OPENHANDS_VERSION=$version" \
    -t "$image:$recipe" -t "$image:latest" "$ctx" >"$ctx/build.log" 2>&1 || {
      echo "docker build failed; last lines of its log:" >&2; tail -n 30 "$ctx/build.log" >&2; exit 1; }
  echo "built $image:$recipe in $(( $(date +%s) - start )) s"
fi

if [ -n "$save" ]; then
  if [ -s "$save" ] && [ "$(cat "$save.tag" 2>/dev/null)" = "$recipe" ]; then
    echo "$save holds $image:$recipe already"
  else
    rm -f "$save.tag"
    mkdir -p "$(dirname "$save")"
    docker save -o "$save.partial" "$image:$recipe" "$image:latest"
    mv "$save.partial" "$save"
    echo "$recipe" >"$save.tag"
    echo "saved $image:$recipe to $save"
  fi
fi
