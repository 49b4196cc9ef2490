#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine. Idempotent:
#  - the engine itself (docker.io) is installed by tools/testbed/install-packages.sh;
#  - on a host run by systemd (/run/systemd/system exists) it starts docker.service and,
#    when that fails, shows the unit's journal;
#  - without systemd (CI hosts, containers) it starts dockerd itself and, when that fails,
#    shows the daemon's own log;
#  - waits until `docker info` answers, or fails with those last words.
# AIRLOCK_SYSTEMD_DIR (default /run/systemd/system) lets the tests choose either branch.
#
# The container runtime, when this script starts dockerd itself: crun (the distribution's
# `crun`) when it is installed, else runc; AIRLOCK_CONTAINER_RUNTIME=runc keeps runc.
# Ansible reaches every lab and Molecule container by `docker exec` and testinfra runs every
# command the same way, and the whole suite's time is CPU. Measured on a 2-core test machine,
# each pair in the same minutes: 100 execs of a short command took 8.6 s of the machine's CPU
# under runc and 6.5 s under crun; 60 Ansible module calls on one container 35.8 s and 31.7 s;
# under load, the engine's side of one exec (dockerd, containerd, the shim and the runtime)
# took 165 ms under runc and 49 ms under crun. Both are OCI runtimes driven by the same engine;
# the containers' own engines (the server's, which starts the sandboxes) keep the runc they
# install. A docker.service run by systemd is the machine's own: its runtime is left alone.
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
  args=() runtime=runc
  if [ "${AIRLOCK_CONTAINER_RUNTIME:-crun}" = crun ] && crun=$(command -v crun); then
    # crun needs every enabled cgroup v1 controller mounted (cgroup-v1-mounts.sh says why).
    if "$(dirname "$0")/cgroup-v1-mounts.sh"; then
      runtime=crun args=(--add-runtime "crun=$crun" --default-runtime crun)
    else
      echo "warning: the cgroup controllers crun needs could not be mounted: the engine uses runc" >&2
    fi
  fi
  echo "starting dockerd (runtime $runtime, log: $log) ..."
  nohup dockerd "${args[@]}" >"$log" 2>&1 &
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
