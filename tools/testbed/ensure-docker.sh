#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine. Idempotent:
#  - the engine itself (docker.io) is installed by tools/testbed/install-packages.sh;
#  - on a host run by systemd (/run/systemd/system exists) it starts docker.service and,
#    when that fails, shows the unit's journal;
#  - without systemd (CI hosts, containers) it starts dockerd itself and, when that fails,
#    shows the daemon's own log;
#  - waits until `docker info` answers, or fails with those last words.
# AIRLOCK_SYSTEMD_DIR (default /run/systemd/system) lets the tests choose either branch.
set -euo pipefail

log=${AIRLOCK_DOCKERD_LOG:-/var/log/airlock-dockerd.log}
wait_s=${AIRLOCK_DOCKER_WAIT:-60}
systemd_dir=${AIRLOCK_SYSTEMD_DIR:-/run/systemd/system}

command -v dockerd >/dev/null 2>&1 ||
  { echo "ERROR: dockerd is missing: run tools/testbed/install-packages.sh (installs docker.io)" >&2; exit 1; }

# Every systemd container (the lab's hosts, Molecule's, the OpenHands host's own engine)
# takes inotify instances from the same per-user budget, 128 by default: with two Molecule
# scenarios and a lab up, systemd in a new container fails to start ("Failed to create
# control group inotify object: Too many open files"). Raise it (never lower it).
inotify=/proc/sys/fs/inotify/max_user_instances
if [ -w "$inotify" ] && [ "$(cat "$inotify")" -lt 1024 ]; then
  echo 1024 >"$inotify" && echo "fs.inotify.max_user_instances raised to 1024 (systemd containers)"
fi

if docker info >/dev/null 2>&1; then
  exit 0
fi

if [ -d "$systemd_dir" ] && command -v systemctl >/dev/null 2>&1; then
  how=systemd
  echo "starting docker.service ..."
  # A failed start is reported below with the unit's journal, after the same wait.
  systemctl start docker.service || true
else
  how=dockerd
  echo "starting dockerd (log: $log) ..."
  nohup dockerd >"$log" 2>&1 &
fi

for _ in $(seq 1 "$wait_s"); do
  docker info >/dev/null 2>&1 && { echo "Docker engine is up"; exit 0; }
  sleep 1
done
if [ "$how" = systemd ]; then
  echo "ERROR: the Docker engine did not start within $wait_s s. The last lines of docker.service's journal:" >&2
  journalctl -u docker.service -n 25 --no-pager >&2 2>/dev/null || true
else
  echo "ERROR: the Docker engine did not start within $wait_s s. Its last log lines ($log):" >&2
  tail -n 25 "$log" >&2 2>/dev/null || true
fi
exit 1
