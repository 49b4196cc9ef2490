"""tools/setup.sh and tools/testbed/ensure-docker.sh stop early with a clear message
when the machine cannot run airlock: not root, Python too old, too little disk, or a
Docker engine that does not start. Each check runs the real script."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "tools" / "setup.sh"
ENSURE_DOCKER = ROOT / "tools" / "testbed" / "ensure-docker.sh"


def run(cmd, env=None, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, **kw)


def fake_bin(tmp_path: Path, name: str, body: str) -> None:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


@pytest.mark.skipif(os.geteuid() != 0, reason="the check under test is the one for non-root users")
def test_refuses_to_run_without_root():
    res = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(SETUP)])
    assert res.returncode != 0
    assert "run as root" in res.stderr


def test_refuses_python_older_than_311(tmp_path):
    fake_bin(tmp_path, "python3.9", 'if [ "$1" = -V ]; then echo "Python 3.9.2"; exit 0; fi\n'
             'exec python3 -c "import sys; sys.exit(1)"')
    res = run(["bash", str(SETUP)], env={"PYTHON": str(tmp_path / "python3.9")})
    assert res.returncode != 0
    assert "Python 3.11 or newer is required" in res.stderr and "3.9.2" in res.stderr


def test_refuses_when_disk_is_short():
    res = run(["bash", str(SETUP)], env={"AIRLOCK_MIN_FREE_GB": "99999999"})
    assert res.returncode != 0
    assert "GB free" in res.stderr and "airlock needs 99999999 GB" in res.stderr


def test_reports_a_docker_engine_that_does_not_start(tmp_path):
    """A daemon that dies at once: the script waits, then prints the daemon's own last words."""
    fake_bin(tmp_path, "docker", "exit 1")
    fake_bin(tmp_path, "dockerd", 'echo "failed to start daemon: simulated storage failure" >&2; exit 1')
    fake_bin(tmp_path, "debootstrap", "exit 0")
    fake_bin(tmp_path, "systemctl", "exit 1")
    log = tmp_path / "dockerd.log"
    res = run(["bash", str(ENSURE_DOCKER)], env={
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "AIRLOCK_DOCKERD_LOG": str(log), "AIRLOCK_DOCKER_WAIT": "2",
    })
    assert res.returncode != 0
    assert "did not start within 2 s" in res.stderr
    assert "simulated storage failure" in res.stderr
