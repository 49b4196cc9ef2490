"""Closing the maintenance window on a server that never had one.

The server tier closes the window in an `always:` section, whatever failed. On a fresh
server whose first run fails before the egress firewall's sets command is installed,
closing used to fail too ("No such file"), burying the run's real error under its own. Here
the close runs on this machine (nothing is changed: the command's path is a test file)
with the command absent (skipped, the run passes) and present (it runs: the control).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def close(tmp_path: Path, script: Path) -> subprocess.CompletedProcess:
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_role": {"name": "egress_firewall", "tasks_from": "maintenance_close"},
         "vars": {"__egress_firewall_sets_script": str(script)}}]}]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    return subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


@pytest.mark.parametrize("installed", [False, True])
def test_closing_without_the_sets_command_is_a_no_op(tmp_path, installed):
    script, marker = tmp_path / "airlock-egress-sets", tmp_path / "closed"
    if installed:
        script.write_text(f"#!/bin/sh\necho \"$1\" > {marker}\necho unchanged\n")
        script.chmod(0o755)
    res = close(tmp_path, script)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert marker.exists() == installed, out[-3000:]
    if installed:
        assert marker.read_text().strip() == "--close"
    else:
        assert "skipping: [localhost]" in out, out[-3000:]
