#!/usr/bin/env bash
# Build the local base images used by Molecule and the lab, without any registry.
#
#   airlock/debian:12   Debian 12 (bookworm), systemd as PID 1, python3
#   airlock/debian:13   Debian 13 (trixie), same recipe (best effort unless required)
#
# Each image carries the hash of its recipe as a label; an image whose label matches
# the current recipe is reused, so this step is free on the second run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# Packages in every base image: what systemd-in-a-container and Ansible need,
# plus the few tools an Ubuntu cloud image also ships (curl, netcat, iproute2).
PACKAGES="python3,python3-apt,systemd,systemd-sysv,dbus,iproute2,iputils-ping,sudo,ca-certificates,curl,netcat-openbsd,procps,gnupg"

mirror() {
  # The Debian mirror the host itself uses (deb822 or one-line sources), else deb.debian.org.
  local m
  m=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  [ -n "$m" ] || m=$(grep -hsE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

recipe_hash() {
  # The recipe is this script plus the suite name: change either and the image is rebuilt.
  { cat "$here/build-images.sh"; echo "$1"; } | sha256sum | cut -c1-16
}

build() {
  local suite=$1 tag=$2 want have rootfs
  want=$(recipe_hash "$suite")
  have=$(docker image inspect -f '{{ index .Config.Labels "airlock.recipe" }}' "airlock/debian:$tag" 2>/dev/null || true)
  if [ "$have" = "$want" ]; then
    echo "airlock/debian:$tag is current (recipe $want)"
    return 0
  fi
  echo "building airlock/debian:$tag from $suite via debootstrap (recipe $want) ..."
  rootfs=$(mktemp -d /var/tmp/airlock-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' RETURN
  debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$rootfs" "$(mirror)" >"$rootfs.log" 2>&1 || {
    echo "debootstrap $suite failed; last lines of its log:" >&2; tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; return 1; }
  rm -f "$rootfs.log"
  # Container hygiene: no getty on a console that does not exist, no stale machine id,
  # and keep downloaded .debs so the shared apt cache volume is useful.
  rm -f "$rootfs/etc/machine-id" && : >"$rootfs/etc/machine-id"
  rm -f "$rootfs/etc/apt/apt.conf.d/docker-clean"
  echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' >"$rootfs/etc/apt/apt.conf.d/01keep-debs"
  chroot "$rootfs" systemctl mask getty.target console-getty.service systemd-udevd.service \
    systemd-udev-trigger.service systemd-modules-load.service sys-kernel-config.mount >/dev/null 2>&1 || true
  chroot "$rootfs" apt-get clean
  tar -C "$rootfs" -c . | docker import \
    -c 'CMD ["/lib/systemd/systemd"]' \
    -c 'ENV container=docker' \
    -c "LABEL airlock.recipe=$want" \
    -c "LABEL org.opencontainers.image.description=\"airlock test base: Debian $suite with systemd\"" \
    - "airlock/debian:$tag" >/dev/null
  echo "built airlock/debian:$tag"
}

command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "the Docker engine is not answering: run tools/testbed/ensure-docker.sh" >&2; exit 1; }

build bookworm 12
if ! build trixie 13; then
  if [ "${AIRLOCK_REQUIRE_DEBIAN13:-0}" = 1 ]; then exit 1; fi
  echo "warning: Debian 13 image not built; scenarios run on Debian 12 only" >&2
fi
