#!/usr/bin/env bash
# The fresh-machine test (`tools/run-tests.sh fresh`): does `make setup` turn a bare Debian 12
# machine into one that passes the unit stage? CI's own machine cannot tell, since it has
# everything installed already.
#
#   1. image airlock/fresh:12: debootstrap minbase of bookworm plus python3, python3-venv,
#      systemd, git, ca-certificates, sudo and make, nothing else (Debian's smallest base, an
#      init, and what is needed to fetch the repository and run make). Built like
#      tools/testbed/build-images.sh builds the base images, once, and rebuilt only when
#      its recipe (the variables and functions hashed in recipe_hash) changes.
#   2. a container of it with systemd as PID 1, given what a Docker engine needs inside
#      (SYS_ADMIN, NET_ADMIN, NET_RAW, /var/lib/docker as a volume of its own, as in
#      molecule/server_tier), so the real setup.sh installs docker.io and starts it the way
#      it does on a Debian host with systemd;
#   3. in it, as root: a clone of this repository's HEAD under /root (mode 0700, unreadable
#      to other users), tools/setup.sh, then tools/run-tests.sh unit. Fails when either fails.
#
# Nothing in the container is pre-installed by this script. Only apt's downloads are cached
# between runs (a named volume for its .deb archive, as the Molecule scenarios have), the
# way a local mirror would; every package is still installed, the venv created from PyPI,
# dockerd started and both base images built by debootstrap inside the container.
#
# Cost, measured on 2 cores (the stage's log prints each step's time): airlock/fresh:12 once,
# 45 s. Then per run 4.5-5 min: container start and clone 2 s; packages 15-30 s (docker.io
# and the rest of install-packages.sh; docker.io's postinst starts docker.service, so the
# engine itself costs a few seconds); venv 65 s; the two base images that setup builds
# inside 150 s (debootstrap of bookworm ~65 s, trixie ~90 s): the price of running the real
# engine rather than handing the container the host's socket, where setup would find the
# host's images current and prove nothing about a fresh engine or debootstrap; unit stage
# 25 s. The first run (image build and empty download caches included) took 4.6 min.
#
# pip inside the container reaches PyPI through this host's TLS interception, if any: the
# host's CA bundle (AIRLOCK_BUILD_CA_BUNDLE, default the Debian system bundle) is mounted
# read-only and named by PIP_CERT and REQUESTS_CA_BUNDLE.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

image=airlock/fresh:12
suite=bookworm
PACKAGES="python3,python3-venv,systemd,git,ca-certificates,sudo,make"
ca=${AIRLOCK_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
name=airlock-fresh-$$
# The revision to test (default HEAD, the committed state of this checkout: a clone, like a
# new user's); e.g. AIRLOCK_FRESH_REF=HEAD~3 shows whether an older commit passed.
ref=${AIRLOCK_FRESH_REF:-HEAD}
step_start=$SECONDS

say() { echo "[$(date +%T)] $*"; }
step_done() { say "$1 ($((SECONDS - step_start)) s)"; step_start=$SECONDS; }
stamp() { local line; while IFS= read -r line; do printf '    [%(%T)T] %s\n' -1 "$line"; done; }

mirror() {
  # The Debian mirror the host itself uses (deb822 or one-line sources), else deb.debian.org
  # (as tools/testbed/build-images.sh, but never a third-party repository the host lists).
  local m
  m=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | grep -m1 debian || true)
  [ -n "$m" ] || m=$(grep -hsE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | grep -m1 debian || true)
  echo "${m:-http://deb.debian.org/debian}"
}

security_mirror() {
  local m
  m=$(grep -hsE '^URIs:|^deb ' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
      awk '{print $2}' | grep -m1 -- 'debian-security' || true)
  echo "${m:-http://deb.debian.org/debian-security}"
}

build_image() { # want
  local rootfs m
  m=$(mirror)
  rootfs=$(mktemp -d /var/tmp/airlock-fresh-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs" "$rootfs.log"' RETURN
  debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$rootfs" "$m" >"$rootfs.log" 2>&1 || {
    echo "debootstrap $suite failed; last lines of its log:" >&2; tail -n 20 "$rootfs.log" >&2; return 1; }
  # The sources of an installed Debian 12 (main, updates, security), on the host's mirror.
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
    "$m" "$suite" "$m" "$suite" "$(security_mirror)" "$suite" >"$rootfs/etc/apt/sources.list"
  # Container hygiene only (as build-images.sh): no stale machine id, no getty on a console
  # that does not exist, no udev; no package is added.
  rm -f "$rootfs/etc/machine-id" && : >"$rootfs/etc/machine-id"
  chroot "$rootfs" systemctl mask getty.target console-getty.service systemd-udevd.service \
    systemd-udev-trigger.service systemd-modules-load.service sys-kernel-config.mount >/dev/null 2>&1 || true
  chroot "$rootfs" apt-get clean
  tar -C "$rootfs" -c . | docker import \
    -c 'CMD ["/lib/systemd/systemd"]' \
    -c 'ENV container=docker' \
    -c "LABEL airlock.recipe=$1" \
    -c "LABEL org.opencontainers.image.description=\"airlock fresh-machine test: bare Debian $suite with systemd\"" \
    - "$image" >/dev/null
}

recipe_hash() {
  { echo "$suite $PACKAGES"; declare -f mirror security_mirror build_image; } | sha256sum | cut -c1-16
}

cleanup() { docker rm -f -v "$name" >/dev/null 2>&1 || true; }

command -v debootstrap >/dev/null || { echo "debootstrap is missing: run tools/setup.sh" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "the Docker engine is not answering: run tools/setup.sh" >&2; exit 1; }
[ -r "$ca" ] || { echo "CA bundle $ca is not readable: set AIRLOCK_BUILD_CA_BUNDLE" >&2; exit 1; }

# --- 1. the image ---------------------------------------------------------------------------
want=$(recipe_hash)
have=$(docker image inspect -f '{{ index .Config.Labels "airlock.recipe" }}' "$image" 2>/dev/null || true)
if [ "$have" = "$want" ]; then
  step_done "$image is current (recipe $want)"
else
  say "building $image from $suite via debootstrap (recipe $want) ..."
  build_image "$want"
  step_done "built $image"
fi

# --- 2. the machine -------------------------------------------------------------------------
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
# --cpu-shares 256: a quarter of the weight of other containers, so beside the Molecule
# scenarios (the long pole of the default run) this stage takes idle CPU rather than theirs.
docker run -d --name "$name" --hostname fresh --label airlock.fresh=true --cpu-shares 256 \
  --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add NET_RAW \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
  --tmpfs /run --tmpfs /run/lock --tmpfs /tmp:exec,mode=1777 \
  --stop-signal SIGRTMIN+3 \
  -v /var/lib/docker \
  -v airlock-fresh-apt-cache:/var/cache/apt/archives \
  -v "$ca:/usr/local/share/airlock-host-ca.crt:ro" \
  -v "$repo:/src:ro" \
  "$image" >/dev/null
in_machine() { docker exec -w /root "$name" "$@"; }
# systemd answers on its bus a moment after the container starts; then wait for the boot.
for _ in $(seq 1 60); do
  state=$(in_machine systemctl is-system-running --wait 2>/dev/null) && break
  case $state in running|degraded) break ;; esac
  sleep 1
done
step_done "machine $name is up (systemd: ${state:-not answering})"

in_machine git clone -q --no-local /src /root/airlock
[ "$ref" = HEAD ] || in_machine git -C /root/airlock checkout -q "$ref"
step_done "cloned $(in_machine git -C /root/airlock log -1 --format='%h %s' | cut -c1-100) into /root/airlock"

# --- 3. setup, then the unit stage ----------------------------------------------------------
rc=0
say "tools/setup.sh ..."
docker exec -w /root/airlock -e PIP_CERT=/usr/local/share/airlock-host-ca.crt \
  -e REQUESTS_CA_BUNDLE=/usr/local/share/airlock-host-ca.crt "$name" tools/setup.sh 2>&1 | stamp || rc=$?
if [ $rc -ne 0 ]; then
  step_done "FAIL: tools/setup.sh exited with $rc on a fresh machine"
  exit 1
fi
step_done "tools/setup.sh passed"

say "tools/run-tests.sh unit ..."
docker exec -w /root/airlock "$name" tools/run-tests.sh unit 2>&1 | sed 's/^/    /' || rc=$?
mkdir -p reports/fresh
docker cp "$name:/root/airlock/reports/unit.log" reports/fresh/unit.log >/dev/null 2>&1 || true
if [ $rc -ne 0 ]; then
  step_done "FAIL: the unit stage failed on a fresh machine (log: reports/fresh/unit.log)"
  exit 1
fi
step_done "the unit stage passed (log: reports/fresh/unit.log)"
