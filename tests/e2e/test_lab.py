"""The lab end to end, as a user runs it (the README's first command, then some).

Lab up from nothing -> site.yml -> validate.yml all green -> site.yml again reports
changed=0 -> a single-role rerun (--tags) repairs deliberate drift -> lab down leaves
nothing behind. The steps share one lab and run in order (pytest runs a module's tests in
file order); a failed step skips the rest.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The test builds a lab of its own beside any lab the user has running: its own name,
# addresses and published ports (inventories/lab/group_vars/all/lab.yml reads these).
LAB = {"AIRLOCK_LAB_NAME": "e2e", "AIRLOCK_LAB_NET": "10.214",
       "AIRLOCK_LAB_HTTPS_PORT": "18443", "AIRLOCK_LAB_HTTP_PORT": "18080"}
PREFIX = "airlock-" + LAB["AIRLOCK_LAB_NAME"]
HOST = {"proxy": "airlock-lab-proxy", "openhands": "airlock-lab-openhands"}  # inventory names
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def playbook(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, **LAB, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0"}
    cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), *args]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    (ROOT / "reports").mkdir(exist_ok=True)
    name = "e2e-" + "-".join(re.sub(r"[^a-z0-9]+", "_", a.lower()).strip("_") for a in args)[:80]
    (ROOT / "reports" / f"{name}.log").write_text(res.stdout + res.stderr)
    return res


def recap(res: subprocess.CompletedProcess) -> dict[str, dict[str, int]]:
    return {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}
            for m in RECAP.findall(res.stdout)}


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def lab_objects() -> list[str]:
    found = docker("ps", "-a", "--filter", f"name={PREFIX}-", "--format", "{{.Names}}").split()
    found += [n for n in docker("network", "ls", "--format", "{{.Name}}").split() if n.startswith(PREFIX)]
    found += [n for n in docker("volume", "ls", "--format", "{{.Name}}").split() if n.startswith(PREFIX)]
    return found


def ok(res: subprocess.CompletedProcess) -> None:
    tail = "\n".join((res.stdout + res.stderr).splitlines()[-60:])
    assert res.returncode == 0, f"ansible-playbook failed:\n{tail}"


def test_lab_comes_up_from_nothing():
    ok(playbook("playbooks/lab_down.yml"))
    assert lab_objects() == []
    ok(playbook("playbooks/lab_up.yml"))
    names = set(lab_objects())
    for host in ("proxy", "openhands", "router", "llm", "decoy"):
        assert f"{PREFIX}-{host}" in names


def test_site_converges():
    ok(playbook("site.yml"))
    # The first backup, as the daily timer would take it (validate.yml checks for one).
    ok(playbook("playbooks/backup.yml"))


def test_validate_is_all_green():
    res = playbook("playbooks/validate.yml")
    report = json.loads((ROOT / "reports" / f"validate-{LAB['AIRLOCK_LAB_NAME']}.json").read_text())
    failed = [c for c in report["checks"] if c["ok"] is False]
    assert res.returncode == 0 and report["passed"] and not failed, json.dumps(failed, indent=1)
    # The report must really have proven the claims, not skipped them.
    checks = " ".join(c["check"] for c in report["checks"] if c["ok"])
    for claim in ("reaches the approved LLM endpoint", "is blocked", "no login: 401", "right login: 200",
                  "websocket with login: 101", "TLS 1.0 and 1.1 refused", "answers the proxy",
                  "is closed to", "fail2ban jails active"):
        assert claim in checks, f"validate.yml did not prove: {claim}"


def test_site_rerun_changes_nothing():
    res = playbook("site.yml")
    ok(res)
    changed = {h: r["changed"] for h, r in recap(res).items() if r["changed"]}
    assert recap(res) and not changed, f"second run changed something: {changed}"


def test_single_role_rerun_repairs_drift():
    # Drift 1: someone edits the proxy's site configuration by hand.
    site = "/etc/nginx/nginx.conf"
    docker("exec", f"{PREFIX}-proxy", "sh", "-c", f"echo '# hand edit' >> {site}")
    res = playbook("site.yml", "--tags", "nginx_proxy")
    ok(res)
    assert recap(res)[HOST["proxy"]]["changed"] >= 1
    assert "# hand edit" not in docker("exec", f"{PREFIX}-proxy", "cat", site)
    # Drift 2: someone flushes the egress firewall's table on the server.
    docker("exec", f"{PREFIX}-openhands", "nft", "delete", "table", "inet", "airlock")
    res = playbook("site.yml", "--tags", "egress_firewall")
    ok(res)
    assert recap(res)[HOST["openhands"]]["changed"] >= 1
    assert "table inet airlock" in docker("exec", f"{PREFIX}-openhands", "nft", "list", "tables")
    ok(playbook("playbooks/validate.yml"))


def test_lab_down_leaves_nothing():
    ok(playbook("playbooks/lab_down.yml"))
    assert lab_objects() == []
    assert not (ROOT / f".{LAB['AIRLOCK_LAB_NAME']}").exists()
