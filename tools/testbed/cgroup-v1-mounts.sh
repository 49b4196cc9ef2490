#!/usr/bin/env bash
# Mount every cgroup v1 controller the kernel has enabled (/proc/cgroups) but no mount on
# this host holds, the way systemd groups them (net_cls with net_prio, cpu with cpuacct).
# Idempotent; nothing to do on a cgroup v2 (unified) host or when every controller is
# mounted. Exit 1, with the reason on stderr, when a controller cannot be mounted.
#
# Why: crun, the container runtime the test engine uses (tools/testbed/ensure-docker.sh),
# makes a cgroup in every v1 hierarchy directory it finds under /sys/fs/cgroup. A systemd
# container started with /sys/fs/cgroup bind-mounted rw (Molecule's, the lab's) creates the
# directories of the controllers the host left unmounted (perf_event, hugetlb,
# net_cls,net_prio) on the host's own tmpfs; from then on crun failed to start every
# container ("creating cgroup directory .../perf_event/docker/<id>: No such file or
# directory"), where runc skips such a directory. With the controllers mounted, both work.
#
# AIRLOCK_CGROUP_ROOT (default /sys/fs/cgroup), AIRLOCK_PROC (default /proc): the tests'
# stand-ins for the real trees.
set -euo pipefail

root=${AIRLOCK_CGROUP_ROOT:-/sys/fs/cgroup}
proc=${AIRLOCK_PROC:-/proc}

[ -r "$proc/cgroups" ] || exit 0
# Every option of every v1 mount: the controllers the host has mounted.
mounted=" $(awk '$3 == "cgroup" { gsub(",", " ", $4); print $4 }' "$proc/self/mounts" | tr '\n' ' ') "
[ -n "${mounted// /}" ] || exit 0   # no v1 hierarchy at all: a unified (cgroup v2) host

missing=()
while read -r name _ _ enabled; do
  case $name in '#'*|'') continue ;; esac
  [ "$enabled" = 1 ] || continue
  case $mounted in *" $name "*) continue ;; esac
  missing+=("$name")
done <"$proc/cgroups"
[ ${#missing[@]} -gt 0 ] || exit 0

has() { case " ${missing[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
groups=()
for name in "${missing[@]}"; do
  case $name in
    net_cls|net_prio) if has net_cls && has net_prio; then group=net_cls,net_prio; else group=$name; fi ;;
    cpu|cpuacct) if has cpu && has cpuacct; then group=cpu,cpuacct; else group=$name; fi ;;
    *) group=$name ;;
  esac
  case " ${groups[*]} " in *" $group "*) ;; *) groups+=("$group") ;; esac
done

# The directories may not exist yet, and the cgroup tmpfs is usually mounted read-only: made
# writable for them, and read-only again on the way out, a failure included.
reopened=0
for group in "${groups[@]}"; do
  [ -d "$root/$group" ] && continue
  if [ $reopened = 0 ] && ! touch "$root/.airlock-probe" 2>/dev/null; then
    mount -o remount,rw "$root" || { echo "cannot make $root writable to add $group" >&2; exit 1; }
    reopened=1
    trap 'mount -o remount,ro "$root" || true' EXIT
  fi
  rm -f "$root/.airlock-probe"
  mkdir "$root/$group"
done
for group in "${groups[@]}"; do
  mount -t cgroup -o "$group" cgroup "$root/$group" ||
    { echo "cannot mount the cgroup v1 controller(s) $group on $root/$group" >&2; exit 1; }
  echo "mounted the cgroup v1 controller(s) $group on $root/$group"
  if [[ $group == *,* ]]; then
    for name in ${group//,/ }; do
      [ -e "$root/$name" ] || ln -s "$group" "$root/$name" 2>/dev/null || true
    done
  fi
done
