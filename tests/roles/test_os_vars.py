"""Each role's OS values load in layers: the OS family's file, then the distribution's over it.

On Ubuntu a role loads vars/Debian.yml (its OS family), then vars/Ubuntu.yml where the role
has one, which sets only the values where Ubuntu differs. Loading only the first file found
left Ubuntu without every value vars/Ubuntu.yml does not repeat (openhands failed on the AWS
hosts for want of its shield's packages and nginx binary).

For each role with vars/Debian.yml, its tasks/set_vars.yml runs on this machine (connection
local) under two host names, one presented as Ubuntu and one as Debian: this machine's facts,
with the distribution and the OS family replaced, so set_vars.yml gathers nothing. Every value
of the role's OS files must then be defined: on Ubuntu with vars/Ubuntu.yml's value where it
sets one and vars/Debian.yml's elsewhere, on Debian with vars/Debian.yml's.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
ROLES = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/vars/Debian.yml"))
DISTRIBUTIONS = ("Ubuntu", "Debian")
UNDEFINED = "<undefined>"


def os_values(role: str, name: str) -> dict:
    path = ROOT / "roles" / role / "vars" / name
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def expected(role: str, distribution: str) -> dict:
    debian = os_values(role, "Debian.yml")
    return {**debian, **os_values(role, "Ubuntu.yml")} if distribution == "Ubuntu" else debian


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> tuple[Path, str]:
    """One run for every role and both distributions, one host name each (include_vars sets
    a host's variables for the rest of the run); each host records its facts and values."""
    tmp = tmp_path_factory.mktemp("os_vars")
    hosts = {f"{role}-{dist.lower()}": {"test_role": role, "test_distribution": dist,
                                        "test_names": sorted({**expected(role, "Debian"), **expected(role, "Ubuntu")})}
             for role in ROLES for dist in DISTRIBUTIONS}
    (tmp / "hosts.yml").write_text(json.dumps({"all": {"hosts": hosts, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))
    play = [{"hosts": "all", "gather_facts": False, "tasks": [
        # Every host is this machine: its facts are gathered once and given to each host.
        {"name": "Gather this machine's facts", "ansible.builtin.setup": {"gather_subset": ["min", "virtual"]},
         "run_once": True},
        {"name": "Present it as the distribution under test",
         "ansible.builtin.set_fact": {"ansible_facts": "{{ hostvars[ansible_play_hosts_all[0]].ansible_facts"
                                                       " | combine({'distribution': test_distribution,"
                                                       " 'os_family': 'Debian'}) }}"}},
        {"name": "Load the role's OS values",
         "ansible.builtin.include_role": {"name": "{{ test_role }}", "tasks_from": "set_vars"}},
        {"name": "Record them", "ansible.builtin.set_fact": {
            "test_record": "{{ {'distribution': ansible_facts.distribution, 'os_family': ansible_facts.os_family,"
                           " 'values': dict(test_names | zip(query('ansible.builtin.vars', *test_names,"
                           f" default='{UNDEFINED}')))}} }}}}"}},
        # One file for every host (one module run instead of one per host).
        {"name": "Write the records", "run_once": True, "ansible.builtin.copy": {
            "dest": str(tmp / "records.json"), "mode": "0600",
            "content": "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'test_record')))"
                       " | to_json }}"}}]}]
    (tmp / "play.yml").write_text(json.dumps(play))
    # A cache of this run's own: the facts here are not this machine's, and must not reach
    # the cache the other runs of the suite share (conftest.py).
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN="ansible.builtin.memory")
    res = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(tmp / "hosts.yml"), str(tmp / "play.yml")],
                         capture_output=True, text=True, cwd=tmp, env=env, timeout=600, check=False)
    return tmp, res.stdout + res.stderr


def test_roles_with_os_values_are_found():
    assert all(os_values(role, "Debian.yml") for role in ROLES), ROLES
    assert {"openhands", "dns_resolver", "host_baseline", "package_relay", "auditd", "monitoring"} <= set(ROLES), ROLES


@pytest.mark.parametrize("role,distribution", [(r, d) for r in ROLES for d in DISTRIBUTIONS])
def test_each_distribution_gets_its_os_family_values_and_its_own_over_them(loaded, role, distribution):
    tmp, out = loaded
    host = f"{role}-{distribution.lower()}"
    records = tmp / "records.json"
    assert records.exists(), out[-4000:]
    got = json.loads(records.read_text()).get(host)
    assert got, "\n".join(line for line in out.splitlines() if host in line) or out[-4000:]
    assert (got["distribution"], got["os_family"]) == (distribution, "Debian"), (
        f"{role}: set_vars.yml gathered the facts again, though they were there: {got}")
    want = expected(role, distribution)
    values = {k: v for k, v in got["values"].items() if k in want}
    missing = sorted(k for k, v in values.items() if v == UNDEFINED)
    assert not missing, f"{role} on {distribution}: not defined: {missing}"
    wrong = {k: {"loaded": values[k], "expected": v} for k, v in want.items() if values[k] != v}
    assert not wrong, f"{role} on {distribution}: {wrong}"
