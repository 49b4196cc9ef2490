"""Bad input to the dns_resolver role, and to the egress firewall's DNS variables that go with
it, is refused before anything changes, naming the variable.

Each case runs ansible-playbook against localhost (connection local) with one bad value on
top of a valid baseline; the play must fail in the validation step with a message naming the
variable and report changed=0. The role writes nothing before its checks: no unbound
configuration appears, and the egress firewall's configuration directory (under tmp_path)
is not created.
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

RESOLVER_OK = {
    "dns_resolver_upstreams": ["192.0.2.53"],
    "dns_resolver_llm_endpoints": [{"name": "llm", "cidrs": ["192.0.2.10/32"]},
                                   {"name": "named", "hosts": ["api.example.org"]}],
}
EGRESS_OK = {
    "egress_firewall_llm_endpoints": [{"name": "named", "hosts": ["api.example.org"]}],
    "egress_firewall_dns_servers": ["192.0.2.53"],
    "egress_firewall_proxy_addresses": ["192.0.2.40"],
    "egress_firewall_dns_users": ["unbound"],
    "egress_firewall_dns_local_resolver": "127.0.0.1",
    "egress_firewall_dns_allow_command": "/usr/local/sbin/airlock-dns-allow",
}
CASES = [
    ("dns_resolver", {"dns_resolver_upstreams": []}, "dns_resolver_upstreams must list at least one resolver"),
    ("dns_resolver", {"dns_resolver_upstreams": ["resolver.example.org"]}, "dns_resolver_upstreams[0]: 'resolver.example.org' is not an IP address"),
    ("dns_resolver", {"dns_resolver_upstreams": ["127.0.0.11"]}, "dns_resolver_upstreams[0]: 127.0.0.11 is a loopback"),
    ("dns_resolver", {"dns_resolver_upstreams": ["::1"]}, "dns_resolver_upstreams[0]: ::1 is a loopback"),
    ("dns_resolver", {"dns_resolver_llm_endpoints": [{"name": "x", "hosts": ["https://api.example.org/"]}]},
     "dns_resolver_llm_endpoints[0].hosts[0]"),
    ("dns_resolver", {"dns_resolver_llm_endpoints": [{"name": "x", "bedrock": True}]}, "dns_resolver_llm_endpoints[0].region"),
    ("dns_resolver", {"dns_resolver_allowed_names": ["bad name.example.org"]}, "dns_resolver_allowed_names[0]"),
    ("dns_resolver", {"dns_resolver_allowed_names": ["localhost"]}, "dns_resolver_allowed_names[0]"),
    ("dns_resolver", {"dns_resolver_manage_resolv_conf": "maybe"}, "dns_resolver_manage_resolv_conf"),
    ("dns_resolver", {"dns_resolver_host_services": [{"name": "logs", "hosts": ["https://logs.example.org/"]}]},
     "dns_resolver_host_services[0].hosts[0]"),
    ("egress_firewall", {"egress_firewall_dns_users": ["root"]}, "egress_firewall_dns_users: 'root'"),
    ("egress_firewall", {"egress_firewall_dns_users": ["Not A User"]}, "egress_firewall_dns_users"),
    ("egress_firewall", {"egress_firewall_dns_servers": [], "egress_firewall_llm_endpoints": [{"name": "x", "cidrs": ["192.0.2.10/32"]}]},
     "egress_firewall_dns_users is set but egress_firewall_dns_servers is empty"),
    ("egress_firewall", {"egress_firewall_dns_local_resolver": "10.0.0.2"}, "egress_firewall_dns_local_resolver: '10.0.0.2' is not a loopback"),
    ("egress_firewall", {"egress_firewall_dns_allow_command": "airlock-dns-allow; rm -rf /"}, "egress_firewall_dns_allow_command"),
]


def run_role(tmp_path: Path, role: str, extra: dict) -> subprocess.CompletedProcess:
    playbook = tmp_path / "play.yml"
    playbook.write_text(f"- hosts: localhost\n  gather_facts: false\n  roles: [{role}]\n")
    variables = {**(RESOLVER_OK if role == "dns_resolver" else EGRESS_OK), **extra,
                 "ansible_python_interpreter": sys.executable,
                 "egress_firewall_config_dir": str(tmp_path / "etc-airlock")}
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FACT_CACHING": "memory"}
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(playbook), "-e", json.dumps(variables)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180, check=False)


@pytest.mark.parametrize("role,extra,message", CASES, ids=[f"{c[0]}-{next(iter(c[1]))}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_rejected_before_any_change(tmp_path, role, extra, message):
    unbound_conf = Path("/etc/unbound/unbound.conf")
    before = unbound_conf.read_bytes() if unbound_conf.exists() else None
    result = run_role(tmp_path, role, extra)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert message in out, out
    assert "changed=0" in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["play.yml"], "something was written"
    assert (unbound_conf.read_bytes() if unbound_conf.exists() else None) == before, "unbound's configuration changed"
