"""tools/setup.sh and its helpers in tools/testbed stop early with a clear message when the
machine cannot run airlock (not root, Python too old, too little disk, a Docker engine that
does not start) and install what the suite needs. Each check runs the real script; what it
would change on the machine (apt-get, dockerd, systemctl, journalctl) is simulated, so the
tests hold on any host: with or without systemd, in a checkout readable by root only."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "tools" / "setup.sh"
ENSURE_DOCKER = ROOT / "tools" / "testbed" / "ensure-docker.sh"
INSTALL_PACKAGES = ROOT / "tools" / "testbed" / "install-packages.sh"
BASH = shutil.which("bash") or "/bin/bash"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="setup refuses non-root users before this check")


def run(cmd, env=None, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, **kw)


def fake_bin(tmp_path: Path, name: str, body: str) -> None:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


@pytest.mark.skipif(os.geteuid() != 0, reason="the check under test is the one for non-root users")
def test_refuses_to_run_without_root():
    # A copy in a world-readable directory: the checkout itself may live where the
    # unprivileged user cannot read (a clone under /root, mode 0700).
    top = Path(tempfile.mkdtemp(prefix="airlock-setup-"))
    try:
        (top / "tools").mkdir()
        shutil.copy(SETUP, top / "tools" / "setup.sh")
        for p in (top, top / "tools", top / "tools" / "setup.sh"):
            p.chmod(0o755)
        res = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BASH,
                   str(top / "tools" / "setup.sh")], cwd=top)
    finally:
        shutil.rmtree(top)
    assert res.returncode != 0
    assert "run as root" in res.stderr, res.stderr


@as_root
def test_refuses_python_older_than_311(tmp_path):
    fake_bin(tmp_path, "python3.9", 'if [ "$1" = -V ]; then echo "Python 3.9.2"; exit 0; fi\n'
             'exec python3 -c "import sys; sys.exit(1)"')
    res = run(["bash", str(SETUP)], env={"PYTHON": str(tmp_path / "python3.9")})
    assert res.returncode != 0
    assert "Python 3.11 or newer is required" in res.stderr and "3.9.2" in res.stderr


@as_root
def test_refuses_when_disk_is_short():
    res = run(["bash", str(SETUP)], env={"AIRLOCK_MIN_FREE_GB": "99999999"})
    assert res.returncode != 0
    assert "GB free" in res.stderr and "airlock needs 99999999 GB" in res.stderr


# --- the Docker engine: both ways of starting it, each simulated -----------------------------

@pytest.fixture
def engine(tmp_path):
    """Fake docker/dockerd/systemctl/journalctl that record what ran. `docker info` answers
    once the file `up` exists; UP=1 makes dockerd or systemctl create it."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    rec = tmp_path / "ran"
    fake_bin(bin_, "docker", f'[ -e "{tmp_path}/up" ]')
    fake_bin(bin_, "dockerd", f'echo "dockerd $*" | sed "s/ *$//" >>"{rec}"\n'
             f'if [ "$UP" = 1 ]; then touch "{tmp_path}/up"; exit 0; fi\n'
             'echo "failed to start daemon: simulated storage failure (dockerd log)" >&2; exit 1')
    fake_bin(bin_, "systemctl", f'echo "systemctl $*" >>"{rec}"\n'
             f'if [ "$UP" = 1 ]; then touch "{tmp_path}/up"; exit 0; fi\n'
             'echo "Job for docker.service failed." >&2; exit 1')
    fake_bin(bin_, "journalctl", f'echo "journalctl $*" >>"{rec}"\n'
             'echo "dockerd[42]: failed to start daemon: simulated storage failure (journal)"')
    systemd_dir = tmp_path / "run-systemd-system"

    def start(systemd: bool, up: bool, runtime: str = "runc", extra_env: dict | None = None):
        if systemd:
            systemd_dir.mkdir(exist_ok=True)
        res = run([BASH, str(ENSURE_DOCKER)], env={
            "PATH": f"{bin_}:{os.environ['PATH']}", "UP": "1" if up else "0",
            "AIRLOCK_DOCKERD_LOG": str(tmp_path / "dockerd.log"), "AIRLOCK_DOCKER_WAIT": "2",
            "AIRLOCK_SYSTEMD_DIR": str(systemd_dir), "AIRLOCK_CONTAINER_RUNTIME": runtime,
            **(extra_env or {}),
        })
        return res, (rec.read_text().splitlines() if rec.exists() else [])
    start.bin = bin_
    return start


def test_reports_a_docker_engine_that_does_not_start_without_systemd(engine):
    """No systemd: the script starts dockerd itself, waits, then prints the daemon's own last words."""
    res, ran = engine(systemd=False, up=False)
    assert res.returncode != 0
    assert "did not start within 2 s" in res.stderr
    assert "simulated storage failure (dockerd log)" in res.stderr
    assert ran == ["dockerd"]


def test_reports_a_docker_engine_that_does_not_start_under_systemd(engine):
    """systemd: the script starts docker.service (never dockerd), waits, then prints the unit's journal."""
    res, ran = engine(systemd=True, up=False)
    assert res.returncode != 0
    assert "did not start within 2 s" in res.stderr
    assert "simulated storage failure (journal)" in res.stderr
    assert "dockerd log" not in res.stderr
    assert ran[0] == "systemctl start docker.service"
    assert ran[1].startswith("journalctl -u docker.service")
    assert "dockerd" not in ran


@pytest.mark.parametrize("systemd", [False, True], ids=["dockerd", "systemd"])
def test_starts_the_docker_engine(engine, systemd):
    res, ran = engine(systemd=systemd, up=True)
    assert res.returncode == 0, res.stderr
    assert "Docker engine is up" in res.stdout
    assert ran == (["systemctl start docker.service"] if systemd else ["dockerd"])


# --- the container runtime and the cgroup controllers it needs ------------------------------

# This machine's kind (cgroup v1, hybrid): cpu and cpuacct mounted apart, perf_event, hugetlb
# and net_cls/net_prio enabled but mounted nowhere on the host.
PROC_CGROUPS = """#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t3\t12\t1
cpu\t1\t12\t1
cpuacct\t2\t12\t1
blkio\t7\t12\t1
memory\t4\t511\t1
devices\t5\t12\t1
freezer\t6\t12\t1
net_cls\t10\t12\t1
perf_event\t13\t12\t1
net_prio\t10\t12\t1
hugetlb\t11\t12\t1
pids\t8\t12\t1
rdma\t0\t1\t0
"""
MOUNTS = "".join(f"cgroup /sys/fs/cgroup/{c} cgroup rw,nosuid,nodev,noexec,relatime,{c} 0 0\n"
                 for c in ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")) + \
    "cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,xattr,name=systemd 0 0\n" \
    "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n"


@pytest.fixture
def cgroups(tmp_path):
    """A stand-in /proc and cgroup root, and a `mount` that records its arguments (and fails
    for the controllers listed in the file `refuse`)."""
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    root.mkdir()
    (proc / "cgroups").write_text(PROC_CGROUPS)
    (proc / "self" / "mounts").write_text(MOUNTS)
    bin_ = tmp_path / "cgbin"
    bin_.mkdir()
    log = tmp_path / "mount.log"
    fake_bin(bin_, "mount", f'echo "$*" >>"{log}"\n'
             f'for c in $(cat "{tmp_path}/refuse" 2>/dev/null); do case "$*" in *"-o $c "*) exit 32 ;; esac; done')

    def mounts():
        return log.read_text().splitlines() if log.exists() else []
    return {"AIRLOCK_PROC": str(proc), "AIRLOCK_CGROUP_ROOT": str(root), "bin": bin_,
            "root": root, "mounts": mounts, "refuse": tmp_path / "refuse"}


def cgroup_env(cg, first_bin: Path | None = None) -> dict:
    """The stand-in trees, and the recording `mount` on PATH (after first_bin, when given)."""
    bins = [str(b) for b in (first_bin, cg["bin"]) if b]
    return {"AIRLOCK_PROC": cg["AIRLOCK_PROC"], "AIRLOCK_CGROUP_ROOT": cg["AIRLOCK_CGROUP_ROOT"],
            "PATH": ":".join([*bins, os.environ["PATH"]])}


def start_with_crun_installed(engine, cgroups, runtime: str):
    """dockerd started by ensure-docker.sh (no systemd), with a crun on PATH."""
    fake_bin(engine.bin, "crun", "exit 0")
    return engine(systemd=False, up=True, runtime=runtime, extra_env=cgroup_env(cgroups, engine.bin))


def mount_controllers(cgroups) -> subprocess.CompletedProcess:
    return run([BASH, str(ROOT / "tools" / "testbed" / "cgroup-v1-mounts.sh")], env=cgroup_env(cgroups))


def test_the_engine_runs_crun_with_every_enabled_controller_mounted(engine, cgroups):
    res, ran = start_with_crun_installed(engine, cgroups, "crun")
    assert res.returncode == 0, res.stderr
    assert ran == [f"dockerd --add-runtime crun={engine.bin}/crun --default-runtime crun"]
    root = cgroups["root"]
    # The enabled controllers mounted nowhere, grouped as systemd groups them; rdma (disabled) left out.
    assert cgroups["mounts"]() == [f"-t cgroup -o {g} cgroup {root}/{g}" for g in ("net_cls,net_prio", "perf_event", "hugetlb")]
    assert os.readlink(root / "net_cls") == os.readlink(root / "net_prio") == "net_cls,net_prio"
    assert "runtime crun" in res.stdout


def test_the_controllers_are_mounted_once(cgroups):
    """Every enabled controller already mounted: nothing to do (a second setup on the machine)."""
    (Path(cgroups["AIRLOCK_PROC"]) / "self" / "mounts").write_text(MOUNTS + "".join(
        f"cgroup /sys/fs/cgroup/{c} cgroup rw,relatime,{c} 0 0\n" for c in ("net_cls,net_prio", "perf_event", "hugetlb")))
    res = mount_controllers(cgroups)
    assert res.returncode == 0, res.stderr
    assert cgroups["mounts"]() == []


def test_a_unified_host_needs_no_controller_mounted(cgroups):
    (Path(cgroups["AIRLOCK_PROC"]) / "self" / "mounts").write_text("cgroup2 /sys/fs/cgroup cgroup2 rw,relatime 0 0\n")
    res = mount_controllers(cgroups)
    assert res.returncode == 0 and cgroups["mounts"]() == [], res.stderr


def test_a_controller_that_cannot_be_mounted_leaves_the_engine_on_runc(engine, cgroups):
    cgroups["refuse"].write_text("perf_event")
    res, ran = start_with_crun_installed(engine, cgroups, "crun")
    assert res.returncode == 0, res.stderr
    assert ran == ["dockerd"]
    assert "perf_event" in res.stderr and "the engine uses runc" in res.stderr


def test_runc_when_asked_for_though_crun_is_installed(engine, cgroups):
    res, ran = start_with_crun_installed(engine, cgroups, "runc")
    assert res.returncode == 0 and ran == ["dockerd"] and cgroups["mounts"]() == [], res.stderr


# --- the Debian packages the suite and the AWS path use ---------------------------------------

def needs() -> list[tuple[str, str]]:
    """(what must exist, package) from install-packages.sh's NEEDS table."""
    table = re.search(r"^NEEDS='\n(.*?)^'", INSTALL_PACKAGES.read_text(), re.S | re.M).group(1)
    return [tuple(line.split()[:2]) for line in table.splitlines() if line.strip()]


def test_the_package_list_covers_what_the_suite_runs():
    """The commands the issue found missing on a fresh machine, and the rest of the audit."""
    table = dict(needs())
    assert table["ssh-keygen"] == table["ssh"] == "openssh-client"
    for cmd, pkg in {"dockerd": "docker.io", "debootstrap": "debootstrap", "auditctl": "auditd",
                     "openssl": "openssl", "curl": "curl", "wrk": "wrk", "ip": "iproute2",
                     "nft": "nftables", "restic": "restic", "pebble": "pebble", "crun": "crun"}.items():
        assert table[cmd] == pkg


def test_installs_what_is_missing_on_a_bare_machine(tmp_path):
    """No command of the list on PATH: one apt-get update (a fresh machine has no lists),
    then one install of every package, extras included, without recommends."""
    log = tmp_path / "apt.log"
    fake_bin(tmp_path, "apt-get", f'echo "$*" >>"{log}"')
    res = run([BASH, str(INSTALL_PACKAGES), "python3.11-venv"], env={"PATH": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    update, install = log.read_text().splitlines()
    assert update.startswith("update")
    words = install.split()
    assert words[0] == "install" and "--no-install-recommends" in words
    commands = {pkg for what, pkg in needs() if not what.startswith("/")}
    assert commands | {"python3.11-venv"} <= set(words)
    assert len(words) == len(set(words)), "a package is listed twice"


def test_installs_nothing_when_all_is_there(tmp_path):
    files = [what for what, _ in needs() if what.startswith("/")]
    if not all(os.path.exists(f) for f in files):
        pytest.skip(f"this host lacks one of {files}")
    for what, _ in needs():
        if not what.startswith("/"):
            fake_bin(tmp_path, what, "exit 0")
    fake_bin(tmp_path, "apt-get", 'echo "apt-get must not run" >&2; exit 1')
    res = run([BASH, str(INSTALL_PACKAGES)], env={"PATH": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert res.stdout == res.stderr == ""
