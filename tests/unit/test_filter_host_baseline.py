"""Unit tests of the host_baseline role's filters: which of its UFW rules a run removes."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from helpers.modules import load_module  # noqa: E402

HB = load_module(ROOT / "roles/host_baseline/filter_plugins/host_baseline.py")

ADDED = [
    "Added user rules (see 'ufw status' for running firewall):",
    "ufw allow from 203.0.113.0/24 to any port 22 proto tcp comment 'airlock ssh'",
    "ufw allow from 203.0.113.0/24 to any port 443 proto tcp comment 'airlock service'",
    "ufw allow from 198.51.100.0/24 to any port 22 proto tcp comment 'airlock ssh'",
    "ufw allow from 198.51.100.0/24 to any port 443 proto tcp comment 'airlock service'",
    "ufw allow from 2001:db8::/32 to any port 22 proto tcp comment 'airlock ssh'",
    "ufw allow from 192.0.2.7 to any port 8443 proto tcp comment 'airlock service'",
    "ufw allow from 192.0.2.0/24 to any port 9100 proto tcp comment 'node exporter'",
    "ufw allow 53/udp",
]


def test_nothing_stale_when_the_settings_cover_every_rule():
    assert HB.ufw_stale_rules(ADDED, ["203.0.113.0/24", "198.51.100.0/24", "2001:db8::/32", "192.0.2.7/32"],
                              [22, 443, 8443]) == []


def test_a_cidr_taken_off_the_list_loses_its_rules():
    stale = HB.ufw_stale_rules(ADDED, ["203.0.113.0/24", "2001:db8::/32", "192.0.2.7/32"], [22, 443, 8443])
    assert stale == [{"source": "198.51.100.0/24", "port": 22}, {"source": "198.51.100.0/24", "port": 443}]


def test_a_port_taken_off_the_list_loses_its_rules():
    stale = HB.ufw_stale_rules(ADDED, ["203.0.113.0/24", "198.51.100.0/24", "2001:db8::/32", "192.0.2.7/32"], [22, 443])
    assert stale == [{"source": "192.0.2.7", "port": 8443}]


def test_a_single_address_matches_its_slash_32_and_other_rules_are_left_alone():
    # ufw prints a /32 as the bare address; rules without the role's comment are never stale.
    stale = HB.ufw_stale_rules(ADDED, ["192.0.2.7/32"], [8443])
    assert {"source": "192.0.2.7", "port": 8443} not in stale
    assert all(rule["port"] not in (9100, 53) for rule in stale)
    assert len(stale) == 5


def test_an_empty_list_makes_every_role_rule_stale():
    assert len(HB.ufw_stale_rules(ADDED, [], [22, 443])) == 6


def test_an_extra_single_rule_is_kept_while_listed_and_stale_once_taken_off():
    # 192.0.2.7 port 8443 as a single extra rule (the server calling the proxy), not through
    # the authorized CIDRs and their ports.
    networks, ports = ["203.0.113.0/24", "198.51.100.0/24", "2001:db8::/32"], [22, 443]
    kept = HB.ufw_stale_rules(ADDED, networks, ports, [{"source": "192.0.2.7/32", "port": 8443}])
    assert {"source": "192.0.2.7", "port": 8443} not in kept
    assert {"source": "192.0.2.7", "port": 8443} in HB.ufw_stale_rules(ADDED, networks, ports, [])
