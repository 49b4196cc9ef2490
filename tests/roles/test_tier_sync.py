"""site.yml configures the two tiers side by side (one play, strategy free); where the server
needs the proxy it waits for the proxy tier's mark (roles/server_tier/tasks/proxy_mark.yml):
the package relay configured, before the server's first package, and the TLS files of this
run, before it reads the proxy's certificate.

Each case runs the server tier's real wait beside a stand-in of the proxy tier, in one
free-strategy play on two hosts that are this machine (connection local): the stand-in
writes the mark, as proxy_tier does, after a pause. The marks' paths are moved into the
test's directory (an extra variable over proxy_tier's vars). What is checked is order (the
server went on only after the mark was written), never how long anything took. The control
of each case: the same play where the proxy is not configured in this run (no run id: the
wait is off) lets the server go on before the mark, so the order checked is the wait's doing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
PAUSE = 3  # the stand-in proxy's pause before it writes the mark (s)


def run(tmp_path: Path, mark: str, run_id: str | None, stale: bool = False) -> dict:
    """The play; returns the clock (time.time) at which the proxy wrote the mark and the server
    went on, read from files the two hosts wrote."""
    marks = {"relay": str(tmp_path / "relay.configured"), "tls": str(tmp_path / "tls.ready")}
    if stale:  # an earlier run's mark: the TLS wait must not take it for this run's
        Path(marks["tls"]).write_text("20260101T000000.000000-1\n")
    stamp = "{{ lookup('ansible.builtin.pipe', 'date +%s.%N') }}"
    proxy_tasks = [
        {"name": "Stand-in of the proxy tier's roles before the mark", "ansible.builtin.command": f"sleep {PAUSE}",
         "changed_when": False},
        {"name": "Stand-in of proxy_tier's mark", "ansible.builtin.copy": {
            "content": "{{ airlock_run_id | default('none') }}\n" if mark == "tls" else "configured\n",
            "dest": f"{{{{ __proxy_tier_ready_marks.{mark} }}}}", "mode": "0644"}},
        {"name": "Note when the mark was written", "ansible.builtin.copy": {
            "content": stamp, "dest": str(tmp_path / "proxy.at"), "mode": "0644"}},
    ]
    server_tasks = [
        {"name": "The server tier's wait", "ansible.builtin.include_tasks": str(ROOT / "roles/server_tier/tasks/proxy_mark.yml"),
         "vars": {"__server_tier_mark": mark}},
        {"name": "Note when the server went on", "ansible.builtin.copy": {
            "content": stamp, "dest": str(tmp_path / "server.at"), "mode": "0644"}},
    ]
    play = [{"hosts": "proxy:openhands", "gather_facts": False, "strategy": "ansible.builtin.free",
             "vars_files": [str(ROOT / "roles/proxy_tier/vars/main.yml"), str(ROOT / "roles/server_tier/vars/main.yml")],
             "vars": {"proxy_tier_package_relay": True, "server_tier_dns_resolver": True,
                      "server_tier_proxy_host": "proxy-host", "server_tier_proxy_wait_timeout": 60},
             "tasks": [{"name": "Proxy", "when": "'proxy' in group_names", "block": proxy_tasks},
                       {"name": "Server", "when": "'openhands' in group_names", "block": server_tasks}]}]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "children": {"proxy": {"hosts": {"proxy-host": {}}}, "openhands": {"hosts": {"server-host": {}}}}}}))
    extra = {"__proxy_tier_ready_marks": marks, **({"airlock_run_id": run_id} if run_id else {})}
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    res = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"),
                          "-e", json.dumps(extra)], capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    return {"proxy": float((tmp_path / "proxy.at").read_text()), "server": float((tmp_path / "server.at").read_text()),
            "output": res.stdout}


@pytest.mark.parametrize("mark,stale", [("relay", False), ("tls", False), ("tls", True)],
                         ids=["relay", "tls", "tls-after-an-earlier-runs-mark"])
def test_the_server_goes_on_only_after_the_proxy_tiers_mark(tmp_path, mark, stale):
    (tmp_path / "waited").mkdir()
    waited = run(tmp_path / "waited", mark, "20261202T220000.000000-42", stale)
    assert waited["server"] >= waited["proxy"], f"the server went on {waited['proxy'] - waited['server']:.1f} s before the mark"
    # The control: the proxy is not configured in this run (no run id), so there is no wait:
    # the server goes on while the stand-in proxy still pauses, before its mark.
    (tmp_path / "control").mkdir()
    control = run(tmp_path / "control", mark, None, stale)
    assert "Wait for the proxy tier's mark" in control["output"] and control["server"] < control["proxy"], control["output"][-3000:]
