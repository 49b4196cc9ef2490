"""Unit tests of the host_baseline role's filters: which of its UFW rules a run removes, and
its input check (host_baseline_input_errors): the role's defaults with authorized CIDRs and
an NTP server give no message (the positive control), each bad value exactly one, naming its
variable. The inputs are built as tasks/assert.yml builds them, from defaults/main.yml."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from helpers.filter_checks import assert_one_message_naming
from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]

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


# --- input checks -------------------------------------------------------------------------
DEFAULTS = yaml.safe_load((ROOT / "roles/host_baseline/defaults/main.yml").read_text())
ASSERT = yaml.safe_load((ROOT / "roles/host_baseline/tasks/assert.yml").read_text())
GOOD = {key: DEFAULTS[re.match(r"^\{\{ (\w+) \}\}$", expr)[1]]
        for key, expr in ASSERT[0]["vars"]["__host_baseline_inputs"].items()} | {
    "ufw_authorized_cidrs": ["192.0.2.0/24"], "ntp_servers": ["192.0.2.123"]}


def errors(over):
    return HB.host_baseline_input_errors({**GOOD, **over})


def test_assert_yml_runs_the_filter_once_with_every_input():
    (task,) = ASSERT
    assert task["ansible.builtin.assert"] == {"that": "__host_baseline_errors | length == 0",
                                              "fail_msg": "{{ __host_baseline_errors | join('; ') }}", "quiet": True}
    assert set(GOOD) == {"ssh_port", "ufw_enabled", "ufw_authorized_cidrs", "ufw_allowed_ports", "ufw_extra_rules",
                         "time_sync_enabled", "ntp_servers", "unattended_upgrades_reboot_time", "ssh_allow_users"}


@pytest.mark.parametrize("over", [
    {},
    {"ssh_port": "2222", "ufw_allowed_ports": [443, "8443"]},
    {"ufw_enabled": False, "ufw_authorized_cidrs": []},
    {"time_sync_enabled": False, "ntp_servers": []},
    {"ufw_authorized_cidrs": ["192.0.2.0/24", "2001:db8::/64", "198.51.100.7"]},
    {"ufw_allowed_ports": []},
    {"ufw_extra_rules": [{"source": "10.0.2.10", "port": 443}, {"source": "10.0.2.0/24", "port": "3142"}]},
    {"unattended_upgrades_reboot_time": "23:59"},
    {"ssh_allow_users": ["admin", "_svc", "ops.team-1"]},
], ids=lambda o: ",".join(o) or "defaults")
def test_good_input_has_no_errors(over):
    assert errors(over) == []


BAD = [
    ({"ssh_port": 70000}, "host_baseline_ssh_port", "must be a port number (1-65535)"),
    ({"ssh_port": "ssh"}, "host_baseline_ssh_port", "got 'ssh'"),
    ({"ufw_authorized_cidrs": []}, "host_baseline_ufw_authorized_cidrs", "host_baseline_ufw_authorized_cidrs is empty"),
    ({"ufw_enabled": "false", "ufw_authorized_cidrs": []}, "host_baseline_ufw_authorized_cidrs", "is empty"),
    ({"ufw_authorized_cidrs": ["not-a-cidr"]}, "host_baseline_ufw_authorized_cidrs", "host_baseline_ufw_authorized_cidrs: not a CIDR"),
    ({"ufw_authorized_cidrs": ["192.0.2.0/24", "10.0.0.1/8"]}, "host_baseline_ufw_authorized_cidrs", "(host bits must be zero): 10.0.0.1/8"),
    ({"ufw_authorized_cidrs": "192.0.2.0/24"}, "host_baseline_ufw_authorized_cidrs", "must be a list"),
    ({"ufw_allowed_ports": [443, 0]}, "host_baseline_ufw_allowed_ports", "must be port numbers (1-65535); got 0"),
    ({"ufw_allowed_ports": [65536]}, "host_baseline_ufw_allowed_ports", "got 65536"),
    ({"ufw_extra_rules": [{"source": "10.0.2.10/24", "port": 443}]}, "host_baseline_ufw_extra_rules[0]", "source 10.0.2.10/24"),
    ({"ufw_extra_rules": [{"source": "10.0.2.10", "port": 443}, {"source": "10.0.2.10", "port": 0}]},
     "host_baseline_ufw_extra_rules[1]", "port 0 is not a port number (1-65535)"),
    ({"ufw_extra_rules": [{"source": "10.0.2.10", "port": "https"}]}, "host_baseline_ufw_extra_rules[0]", "port https"),
    ({"ufw_extra_rules": [{"port": 443}]}, "host_baseline_ufw_extra_rules[0]", "source None"),
    ({"ufw_extra_rules": ["10.0.2.10:443"]}, "host_baseline_ufw_extra_rules[0]", "each entry needs a source address or CIDR"),
    ({"ntp_servers": []}, "host_baseline_ntp_servers", "host_baseline_ntp_servers is empty"),
    ({"ntp_servers": "pool.ntp.org"}, "host_baseline_ntp_servers", "must be a list"),
    ({"unattended_upgrades_reboot_time": "3:30"}, "host_baseline_unattended_upgrades_reboot_time", "must be HH:MM"),
    ({"unattended_upgrades_reboot_time": "24:00"}, "host_baseline_unattended_upgrades_reboot_time", "got '24:00'"),
    ({"ssh_allow_users": ["admin", "Bob"]}, "host_baseline_ssh_allow_users", "invalid user name 'Bob'"),
    ({"ssh_allow_users": ["al ice"]}, "host_baseline_ssh_allow_users", "invalid user name"),
    ({"ssh_allow_users": "admin"}, "host_baseline_ssh_allow_users", "must be a list"),
]


@pytest.mark.parametrize("over,var,fragment", BAD, ids=[f"{i}-{case[1]}" for i, case in enumerate(BAD)])
def test_each_bad_value_gets_one_message_naming_its_variable(over, var, fragment):
    found = errors(over)
    assert_one_message_naming(found, var, fragment)


def test_every_problem_is_reported_not_only_the_first():
    found = errors({"ssh_port": 0, "ufw_authorized_cidrs": ["not-a-cidr"], "ntp_servers": [],
                    "ufw_extra_rules": [{"source": "10.0.2.10/24", "port": 0}], "ssh_allow_users": ["Bob"]})
    assert [re.split(r"[ :]", e)[0] for e in found] == [
        "host_baseline_ssh_port", "host_baseline_ufw_authorized_cidrs", "host_baseline_ufw_extra_rules[0]",
        "host_baseline_ufw_extra_rules[0]", "host_baseline_ntp_servers", "host_baseline_ssh_allow_users"]
