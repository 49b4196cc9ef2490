"""Bad input to the server tier roles is rejected before anything changes, naming the variable.

Each case runs ansible-playbook against localhost (connection local) with one bad value on
top of a valid baseline; the play must fail in the validation step with a message naming
the variable, report changed=0, and leave no file behind. The filters are also unit tested
directly.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))

EGRESS_OK = {
    "egress_firewall_llm_endpoints": [{"name": "llm", "cidrs": ["192.0.2.10/32"], "port": 443},
                                      {"name": "named", "hosts": ["api.example.org"]}],
    "egress_firewall_dns_servers": ["192.0.2.53"],
    "egress_firewall_ntp_servers": ["192.0.2.123"],
    "egress_firewall_proxy_addresses": ["192.0.2.40"],
}
OPENHANDS_OK = {
    "openhands_bind_address": "192.0.2.11",
    "openhands_llm_model": "openai/gpt-4o",
    "openhands_llm_base_url": "https://api.example.org/v1",
    "openhands_llm_api_key": "sk-never-shown",
}

CASES = [
    ("egress_firewall", {"egress_firewall_llm_endpoints": []}, "egress_firewall_llm_endpoints is empty"),
    ("egress_firewall", {"egress_firewall_llm_endpoints": [{"name": "x", "cidrs": ["10.0.0.1/24"]}]},
     "egress_firewall_llm_endpoints[0].cidrs"),
    ("egress_firewall", {"egress_firewall_llm_endpoints": [{"name": "x", "cidrs": ["10.0.0.0/33"]}]},
     "egress_firewall_llm_endpoints[0].cidrs"),
    ("egress_firewall", {"egress_firewall_llm_endpoints": [{"name": "x", "hosts": ["https://api.example.org/"]}]},
     "egress_firewall_llm_endpoints[0].hosts"),
    ("egress_firewall", {"egress_firewall_dns_servers": ["resolver.example.org"]}, "egress_firewall_dns_servers"),
    ("egress_firewall", {"egress_firewall_proxy_addresses": ["not-a-cidr"]}, "egress_firewall_proxy_addresses"),
    ("egress_firewall", {"egress_firewall_ssh_port": "ssh"}, "egress_firewall_ssh_port"),
    ("openhands", {"openhands_llm_api_key": ""}, "openhands_llm_api_key is empty"),
    ("openhands", {"openhands_llm_base_url": "api.example.org/v1"}, "openhands_llm_base_url"),
    ("openhands", {"openhands_llm_base_url": "htp:/broken"}, "openhands_llm_base_url"),
    ("openhands", {"openhands_bind_address": "0.0.0.0"}, "openhands_bind_address"),
    ("openhands", {"openhands_image_tag": "latest"}, "openhands_image_tag"),
    ("openhands", {"openhands_image_source": "ftp"}, "openhands_image_source"),
    ("openhands", {"openhands_bridge_gateway": "docker0"}, "openhands_bridge_gateway"),
    ("openhands", {"openhands_app_shield_paths": ["/"]}, "openhands_app_shield_paths"),
    ("egress_firewall", {"egress_firewall_llm_users": ["root"]}, "egress_firewall_llm_users"),
    ("egress_firewall", {"egress_firewall_container_callback_ports": [70000]}, "egress_firewall_container_callback_ports"),
    ("egress_firewall", {"egress_firewall_app_interfaces": ["docker0"]}, "egress_firewall_app_interfaces"),
    ("openhands", {"openhands_network_name": "bridge"}, "openhands_network_name"),
    ("egress_firewall", {"egress_firewall_app_proxy_routes": [{"address": "proxy.example.org", "port": 443}]},
     "egress_firewall_app_proxy_routes[0].address"),
    ("openhands", {"openhands_sandbox_url_pattern": "https://localhost:8443/runtime/{port}"}, "must not name localhost"),
    ("openhands", {"openhands_extra_hosts": [{"name": "proxy.example.org", "address": "not-an-ip"}]}, "openhands_extra_hosts[0]"),
    ("openhands", {"openhands_trusted_ca_certificates": ["not a certificate"]}, "openhands_trusted_ca_certificates"),
    ("openhands", {"openhands_network_subnet": "172.30.0.0/33"}, "openhands_network_subnet"),
    ("egress_firewall", {"egress_firewall_log_group": 70000}, "egress_firewall_log_group"),
    ("egress_firewall", {"egress_firewall_log_group": "nflog"}, "egress_firewall_log_group"),
    ("egress_firewall", {"egress_firewall_package_relays": [{"address": "proxy.example.org", "port": 3142}]},
     "egress_firewall_package_relays[0].address"),
    ("egress_firewall", {"egress_firewall_package_relays": [{"address": "192.0.2.40", "port": 70000}]},
     "egress_firewall_package_relays[0].port"),
    ("egress_firewall", {"egress_firewall_host_services": [{"name": "s3", "cidrs": ["198.51.100.0/24"]}],
                         "egress_firewall_host_service_users": []},
     "egress_firewall_host_service_users is empty"),
    ("egress_firewall", {"egress_firewall_host_services": [{"name": "logs", "hosts": ["198.51.100.7"]}]},
     "egress_firewall_host_services[0].hosts"),
]


def run_role(tmp_path: Path, role: str, extra: dict) -> subprocess.CompletedProcess:
    playbook = tmp_path / "play.yml"
    playbook.write_text(f"- hosts: localhost\n  gather_facts: false\n  roles: [{role}]\n")
    variables = {**(EGRESS_OK if role == "egress_firewall" else OPENHANDS_OK), **extra,
                 # localhost is named in the inventory, so Ansible would discover an interpreter
                 # on PATH (on some machines a broken shim): use the one running the tests.
                 "ansible_python_interpreter": sys.executable}
    # Everything the role would write goes under tmp_path, so "nothing changed" is checkable.
    variables.update({"egress_firewall_config_dir": str(tmp_path / "etc-airlock")} if role == "egress_firewall" else
                     {"openhands_config_dir": str(tmp_path / "etc-openhands"),
                      "openhands_state_dir": str(tmp_path / "state")})
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FACT_CACHING": "memory",
           "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"}
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(playbook), "-e", json.dumps(variables)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180, check=False)


@pytest.mark.parametrize("role,extra,message", CASES, ids=[f"{c[0]}-{next(iter(c[1]))}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_rejected_before_any_change(tmp_path, role, extra, message):
    result = run_role(tmp_path, role, extra)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert message in out, out
    assert "changed=0" in out, out
    assert "sk-never-shown" not in out
    assert not any(p.name.startswith(("etc-", "state")) for p in tmp_path.iterdir()), "something was written"



EGRESS = load_module(ROOT / "roles/egress_firewall/filter_plugins/egress_firewall.py")
OPENHANDS = load_module(ROOT / "roles/openhands/filter_plugins/openhands.py")


def _egress_inputs(**over):
    base = {k.removeprefix("egress_firewall_"): v for k, v in EGRESS_OK.items()}
    base.update(ssh_port=22, openhands_port=3000, sandbox_port_range={"start": 32768, "end": 60999},
                proxy_callback_ports=[443], container_interfaces=["docker0", "br-*"], log_prefix="AIRLOCK-EGRESS-DROP",
                ingress_log_prefix="AIRLOCK-INGRESS-DROP", log_rate="10/minute")
    base.update(over)
    return base


def test_egress_filter_accepts_the_baseline():
    assert EGRESS.egress_firewall_input_errors(_egress_inputs()) == []


@pytest.mark.parametrize("over,fragment", [
    ({"llm_endpoints": [{"name": "x", "cidrs": ["0.0.0.0/0"]}]}, "would allow everything"),
    ({"llm_endpoints": [{"name": "x", "bedrock": True, "region": "nowhere"}]}, ".region"),
    ({"llm_endpoints": [{"name": "a", "hosts": ["a.example.org"]}], "dns_servers": []}, "egress_firewall_dns_servers is empty"),
    ({"sandbox_port_range": {"start": 5000, "end": 4000}}, "egress_firewall_sandbox_port_range"),
    ({"maintenance_open": ["nope"]}, "egress_firewall_maintenance_open"),
    ({"log_prefix": "has space"}, "egress_firewall_log_prefix"),
    ({"container_callback_ports": [0]}, "egress_firewall_container_callback_ports"),
    ({"app_interfaces": ["docker0"]}, "docker0 is where the sandboxes run"),
    ({"app_interfaces": ["br-*"]}, "no wildcard"),
    ({"app_interfaces": ["veth-app"]}, "not matched by egress_firewall_container_interfaces"),
    ({"app_proxy_routes": [{"address": "198.51.100.7", "port": 0}]}, "egress_firewall_app_proxy_routes[0].port"),
    ({"app_proxy_routes": [{"address": "2001:db8::7", "port": 443}]}, "no single IPv6 address"),
    ({"app_proxy_routes": [{"address": "198.51.100.7", "port": 443, "to": "x"}]}, "must be {address, port}"),
    ({"app_proxy_routes": [{"address": "198.51.100.7", "port": 443}], "app_interfaces": []}, "needs egress_firewall_app_interfaces"),
    ({"proxy_https_port": 0}, "egress_firewall_proxy_https_port"),
    ({"log_group": 65536}, "egress_firewall_log_group"),
    ({"log_group": -1}, "egress_firewall_log_group"),
    ({"log_group": True}, "egress_firewall_log_group"),
    ({"package_relays": [{"address": "0.0.0.0", "port": 3142}]}, "egress_firewall_package_relays[0].address"),
    ({"package_relays": [{"address": "127.0.0.1", "port": 3142}]}, "is a loopback address"),
    ({"package_relays": [{"address": "192.0.2.40/32", "port": 3142}]}, "egress_firewall_package_relays[0].address"),
    ({"package_relays": [{"address": "192.0.2.40", "port": 3142, "proto": "udp"}]}, "must be {address, port}"),
    ({"package_relays": {"address": "192.0.2.40", "port": 3142}}, "egress_firewall_package_relays must be a list"),
])
def test_egress_filter_rejects(over, fragment):
    assert any(fragment in e for e in EGRESS.egress_firewall_input_errors(_egress_inputs(**over)))


def test_egress_package_relay_rule_is_host_only():
    """The relay's rule is rendered in host_out (the host's own output), with its address and port."""
    rules = EGRESS.egress_firewall_package_relay_rules([{"address": "192.0.2.40", "port": 3142},
                                                         {"address": "2001:db8::40", "port": "3142"}])
    assert rules == [{"family": "ip", "address": "192.0.2.40", "port": 3142},
                     {"family": "ip6", "address": "2001:db8::40", "port": 3142}]
    template = (ROOT / "roles/egress_firewall/templates/egress.nft.j2").read_text()
    host_out = template[template.index("chain host_out {"):template.index("chain egress_drop {")]
    assert "egress_firewall_package_relay_rules" in host_out
    assert template.count("egress_firewall_package_relay_rules") == 1, "the relay must appear in host_out only"



def test_egress_destinations_split_by_family_and_bedrock_becomes_a_name():
    endpoints = [{"name": "a", "cidrs": ["192.0.2.0/24", "2001:db8::/64"], "port": 8443},
                 {"name": "b", "bedrock": True, "region": "us-east-1"}]
    static = EGRESS.egress_firewall_static_destinations(endpoints)
    assert [(d["family"], d["cidr"], d["port"]) for d in static] == [("ip", "192.0.2.0/24", 8443), ("ip6", "2001:db8::/64", 8443)]
    assert EGRESS.egress_firewall_host_destinations(endpoints) == [
        {"name": "b", "hosts": ["bedrock-runtime.us-east-1.amazonaws.com"], "ports": [443]}]
    assert EGRESS.egress_firewall_address_in("192.0.2.5", ["192.0.2.0/24"])
    assert not EGRESS.egress_firewall_address_in("198.51.100.1", ["192.0.2.0/24"])


def test_app_proxy_paths_translate_only_what_differs_from_the_proxys_https_port():
    paths = EGRESS.egress_firewall_app_proxy_paths(
        [{"address": "192.0.2.40", "port": 443}, {"address": "192.0.2.40", "port": 8443},
         {"address": "198.51.100.7", "port": 443}, {"address": "2001:db8::7", "port": 443}],
        ["192.0.2.0/24", "192.0.2.40", "2001:db8::40"], 443)
    assert paths["accept"] == {"ip": ["192.0.2.40"], "ip6": ["2001:db8::40"]}
    assert paths["nat"] == [
        {"family": "ip", "address": "192.0.2.40", "port": 8443, "to": "192.0.2.40:443"},
        {"family": "ip", "address": "198.51.100.7", "port": 443, "to": "192.0.2.40:443"},
        {"family": "ip6", "address": "2001:db8::7", "port": 443, "to": "[2001:db8::40]:443"}]
    assert EGRESS.egress_firewall_app_proxy_paths([], ["192.0.2.40"], 443) == {"accept": {"ip": [], "ip6": []}, "nat": []}


def test_openhands_filter_never_sees_the_key_and_checks_pattern():
    ok = {"llm_api_key_set": True, "llm_api_key_multiline": False, "llm_model": "m", "llm_base_url": "https://x.example/v1",
          "bind_address": "10.0.0.5", "sandbox_url_pattern": "https://proxy.example/runtime/{port}",
          "image_repository": "docker.openhands.dev/openhands/openhands", "image_tag": "1.11.0",
          "agent_server_image_repository": "ghcr.io/openhands/agent-server", "agent_server_image_tag": "1.34.0-python",
          "image_source": "registry", "extra_env": {}, "app_shield_paths": ["/api/v1/webhooks/"],
          "network_name": "airlock-app", "network_interface": "br-airlock-app", "network_subnet": ""}
    assert OPENHANDS.openhands_input_errors(ok) == []
    assert OPENHANDS.openhands_input_errors(dict(ok, network_subnet="172.30.0.0/24")) == []
    for var, value in (("network_name", "bridge"), ("network_name", "host"), ("network_name", ""),
                       ("network_interface", "docker0"), ("network_interface", "br-much-too-long-name"),
                       ("network_subnet", "172.30.0.1/24"), ("network_subnet", "fd00::/64"), ("network_subnet", "10.0.0.0/30")):
        assert any(f"openhands_{var}" in e for e in OPENHANDS.openhands_input_errors(dict(ok, **{var: value}))), (var, value)
    # The server calls its sandboxes through the pattern: never at localhost (its container's
    # host.docker.internal); its public name may be mapped to the proxy, and the proxy's
    # certificate trusted.
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert OPENHANDS.openhands_input_errors(dict(ok, sandbox_url_pattern="https://airlock.localhost:8443/runtime/{port}",
                                                 extra_hosts=[{"name": "airlock.localhost", "address": "10.0.1.10"}],
                                                 trusted_ca_certificates=[pem])) == []
    for var, value, fragment in (
            ("sandbox_url_pattern", "https://localhost:8443/runtime/{port}", "must not name localhost"),
            ("sandbox_url_pattern", "https://127.0.0.1/runtime/{port}", "must not name localhost"),
            ("extra_hosts", [{"name": "a b", "address": "10.0.1.10"}], "openhands_extra_hosts[0]"),
            ("extra_hosts", [{"name": "proxy.example", "address": "10.0.1.10", "extra": 1}], "openhands_extra_hosts[0]"),
            ("extra_hosts", {"proxy.example": "10.0.1.10"}, "openhands_extra_hosts must be a list"),
            ("trusted_ca_certificates", ["-----BEGIN PRIVATE KEY-----"], "openhands_trusted_ca_certificates"),
            ("trusted_ca_certificates", pem, "openhands_trusted_ca_certificates")):
        assert any(fragment in e for e in OPENHANDS.openhands_input_errors(dict(ok, **{var: value}))), (var, value)
    assert OPENHANDS.openhands_first_host("172.30.0.0/24") == "172.30.0.1"
    for paths, fragment in (([], None), (["/"], "would open the whole API"), (["/api/v1/webhooks"], "path prefixes"),
                            (["/api/../"], "path prefixes"), ("/api/", "path prefixes")):
        errors = OPENHANDS.openhands_input_errors(dict(ok, app_shield_paths=paths))
        assert (not errors) if fragment is None else any(fragment in e and "openhands_app_shield_paths" in e for e in errors)
    bad = dict(ok, sandbox_url_pattern="https://proxy.example/runtime/")
    assert any("openhands_sandbox_url_pattern" in e for e in OPENHANDS.openhands_input_errors(bad))
    assert OPENHANDS.openhands_input_errors(dict(ok, bridge_gateway="172.17.0.1")) == []
    for gateway in ("0.0.0.0", "127.0.0.1", "docker0"):
        assert any("openhands_bridge_gateway" in e for e in OPENHANDS.openhands_input_errors(dict(ok, bridge_gateway=gateway)))
    bad = dict(ok, image_source="archive")
    assert any("openhands_image_archive is empty" in e for e in OPENHANDS.openhands_input_errors(bad))
