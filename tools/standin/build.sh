#!/usr/bin/env bash
# Build the OpenHands stand-in image from the local base image airlock/debian:12 (no registry):
#
#   tools/standin/build.sh                 build airlock/openhands-standin:<recipe> and :latest
#   tools/standin/build.sh --save FILE     also write a `docker save` archive of it to FILE,
#                                          and its recipe tag to FILE.tag
#
# The image is rebuilt only when its recipe (this script, openhands-standin/* and
# fake-dns/dns_query.py, the DNS probe it copies) changes; the recipe hash is the image tag
# and the label airlock.recipe. The build context is tools/standin/ (the Dockerfile copies
# from two of its directories).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=airlock/openhands-standin
save=""
if [ "${1:-}" = "--save" ]; then save=${2:?--save needs a file name}; fi

docker image inspect airlock/debian:12 >/dev/null 2>&1 || {
  echo "base image airlock/debian:12 is missing: build it with tools/testbed/build-images.sh" >&2; exit 1; }

recipe=$(cat "$here/build.sh" "$here"/openhands-standin/* "$here/fake-dns/dns_query.py" | sha256sum | cut -c1-16)
have=$(docker image inspect -f '{{ index .Config.Labels "airlock.recipe" }}' "$image:latest" 2>/dev/null || true)
if [ "$have" = "$recipe" ] && docker image inspect "$image:$recipe" >/dev/null 2>&1; then
  echo "$image:$recipe is current"
else
  echo "building $image:$recipe ..."
  DOCKER_BUILDKIT=0 docker build -q --build-arg "RECIPE=$recipe" -t "$image:$recipe" -t "$image:latest" \
    -f "$here/openhands-standin/Dockerfile" "$here" >/dev/null
  echo "built $image:$recipe"
fi

if [ -n "$save" ]; then
  docker save -o "$save" "$image:$recipe" "$image:latest"
  echo "$recipe" >"$save.tag"
  echo "saved $image:$recipe to $save"
fi
