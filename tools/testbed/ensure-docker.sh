#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine. Idempotent:
#  - installs docker.io (with debootstrap, for the base images, and auditd, for the
#    kernel audit test) from the distribution
#    archive when missing;
#  - starts dockerd itself when it is not running (CI hosts have no systemd);
#  - waits until `docker info` answers, or fails with the daemon's own last words.
set -euo pipefail

log=${AIRLOCK_DOCKERD_LOG:-/var/log/airlock-dockerd.log}

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
# auditctl/ausearch: tests/host loads the audit rules into this machine's real kernel.
command -v auditctl >/dev/null 2>&1 || missing+=(auditd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from the distribution archive ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" iptables >/dev/null
fi

if docker info >/dev/null 2>&1; then
  exit 0
fi

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl start docker || true
else
  echo "starting dockerd (log: $log) ..."
  nohup dockerd >"$log" 2>&1 &
fi

for _ in $(seq 1 "${AIRLOCK_DOCKER_WAIT:-60}"); do
  docker info >/dev/null 2>&1 && { echo "Docker engine is up"; exit 0; }
  sleep 1
done
echo "ERROR: the Docker engine did not start within ${AIRLOCK_DOCKER_WAIT:-60} s. Its last log lines:" >&2
tail -n 25 "$log" >&2 2>/dev/null || journalctl -u docker -n 25 >&2 2>/dev/null || true
exit 1
