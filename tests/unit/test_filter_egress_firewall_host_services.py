"""Unit tests of the egress firewall's host services (egress_firewall_host_services and
egress_firewall_host_service_users): the input checks, a good input beside each bad one,
and the filters that turn the entries into static rules and the sets tool's configuration.
The rules themselves are proven in a real kernel by tests/host/test_egress_firewall_netns.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]

EGRESS = load_module(ROOT / "roles/egress_firewall/filter_plugins/egress_firewall.py")

BASE = {
    "llm_endpoints": [{"name": "llm", "cidrs": ["192.0.2.10/32"], "port": 443}],
    "dns_servers": ["192.0.2.53"], "proxy_addresses": ["192.0.2.40"], "ssh_port": 22, "openhands_port": 3000,
    "sandbox_port_range": {"start": 32768, "end": 60999}, "container_interfaces": ["docker0", "br-*"],
    "app_interfaces": ["br-airlock-app"], "log_prefix": "AIRLOCK-EGRESS-DROP",
    "ingress_log_prefix": "AIRLOCK-INGRESS-DROP", "log_rate": "10/minute",
}
SERVICES = [
    {"name": "s3", "cidrs": ["198.51.100.0/24", "2001:db8:5::/48"]},
    {"name": "logs", "hosts": ["logs.us-east-1.amazonaws.com"], "port": 443},
    {"name": "both", "hosts": ["a.example.org"], "cidrs": ["203.0.113.7/32"], "ports": [443, 8443]},
]


def errors(**over):
    return EGRESS.egress_firewall_input_errors({**BASE, "host_services": SERVICES, "host_service_users": ["root"], **over})


def test_good_host_services_have_no_errors():
    assert errors() == []
    assert errors(host_services=[], host_service_users=[]) == []  # no services: no users needed
    assert errors(host_service_users=["root", "restic"]) == []
    assert EGRESS.egress_firewall_input_errors(BASE) == []  # not given at all


@pytest.mark.parametrize("over,fragment", [
    ({"host_services": [{"name": "s3"}]}, "egress_firewall_host_services[0] (s3) needs hosts or cidrs"),
    ({"host_services": [{"name": "S3", "cidrs": ["198.51.100.0/24"]}]}, "egress_firewall_host_services[0].name must match [a-z0-9-]"),
    ({"host_services": [{"name": "s3", "cidrs": ["198.51.100.0/24"]}, {"name": "s3", "hosts": ["a.example.org"]}]},
     "egress_firewall_host_services[1].name 's3' is used twice"),
    ({"host_services": [{"name": "s3", "cidrs": ["198.51.100.1/24"]}]}, "egress_firewall_host_services[0].cidrs"),
    ({"host_services": [{"name": "s3", "cidrs": ["0.0.0.0/0"]}]}, "would allow everything"),
    ({"host_services": [{"name": "logs", "hosts": ["198.51.100.7"]}]}, "egress_firewall_host_services[0].hosts"),
    ({"host_services": [{"name": "logs", "hosts": ["https://logs.example.org/"]}]}, "egress_firewall_host_services[0].hosts"),
    ({"host_services": [{"name": "logs", "hosts": ["a.example.org"], "port": 70000}]}, "egress_firewall_host_services[0].port: 70000"),
    ({"host_services": [{"name": "logs", "hosts": ["a.example.org"], "ports": [443, 0]}]}, "egress_firewall_host_services[0].ports: 0"),
    ({"host_services": [{"name": "logs", "hosts": ["a.example.org"], "ports": []}]}, "egress_firewall_host_services[0].ports must be"),
    ({"host_services": [{"name": "logs", "hosts": ["a.example.org"], "port": 443, "ports": [443]}]}, "has both port and ports"),
    ({"host_services": "s3"}, "egress_firewall_host_services must be a list"),
    ({"host_service_users": []}, "egress_firewall_host_service_users is empty but egress_firewall_host_services are set"),
    ({"host_service_users": ["Root user"]}, "egress_firewall_host_service_users: 'Root user'"),
    ({"host_service_users": "root"}, "egress_firewall_host_service_users must be a list"),
])
def test_bad_host_services_are_refused_naming_the_variable(over, fragment):
    found = errors(**over)
    assert any(fragment in e for e in found), found
    assert all(e.startswith("egress_firewall_") for e in found), found


def test_static_rules_one_per_entry_and_family():
    assert EGRESS.egress_firewall_host_service_rules(SERVICES) == [
        {"name": "s3", "family": "ip", "cidrs": ["198.51.100.0/24"], "ports": [443]},
        {"name": "s3", "family": "ip6", "cidrs": ["2001:db8:5::/48"], "ports": [443]},
        {"name": "both", "family": "ip", "cidrs": ["203.0.113.7"], "ports": [443, 8443]},
    ]


def test_named_services_go_to_the_sets_tool():
    assert EGRESS.egress_firewall_host_service_destinations(SERVICES) == [
        {"name": "logs", "hosts": ["logs.us-east-1.amazonaws.com"], "ports": [443]},
        {"name": "both", "hosts": ["a.example.org"], "ports": [443, 8443]},
    ]
    assert EGRESS.egress_firewall_host_service_destinations([]) == []
