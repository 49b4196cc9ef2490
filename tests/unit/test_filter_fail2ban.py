"""Unit tests of the fail2ban role's input check (fail2ban_input_errors), called directly: the
role's defaults with an operator's never-ban address give no message (the positive control),
each bad value exactly one, naming its variable. The inputs are built as tasks/assert.yml
builds them, from defaults/main.yml."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from helpers.filter_checks import assert_one_message_naming
from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]

ROLE = ROOT / "roles" / "fail2ban"
FAIL2BAN = load_module(ROLE / "filter_plugins" / "fail2ban.py")
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
ASSERT = yaml.safe_load((ROLE / "tasks" / "assert.yml").read_text())
GOOD = {key: DEFAULTS[re.match(r"^\{\{ (\w+) \}\}$", expr)[1]]
        for key, expr in ASSERT[0]["vars"]["__fail2ban_inputs"].items()} | {"ignoreip": ["192.0.2.10/32"]}


def errors(over):
    return FAIL2BAN.fail2ban_input_errors({**GOOD, **over})


def test_assert_yml_runs_the_filter_once_with_every_input():
    (task,) = ASSERT
    assert task["ansible.builtin.assert"] == {"that": "__fail2ban_errors | length == 0",
                                              "fail_msg": "{{ __fail2ban_errors | join('; ') }}", "quiet": True}
    assert set(GOOD) == {"ignoreip", "bantime", "findtime", "maxretry", "recidive_bantime", "recidive_maxretry",
                         "sshd_port", "nginx_ports", "banaction", "banaction_allports"}


@pytest.mark.parametrize("over", [
    {},
    {"ignoreip": []},
    {"ignoreip": ["192.0.2.10/32", "198.51.100.0/28", "2001:db8::10/128", "203.0.113.7"]},
    {"bantime": "3600", "findtime": "600", "maxretry": "5", "recidive_bantime": "7200", "recidive_maxretry": "2"},
    {"sshd_port": "2222", "nginx_ports": [443, "8443"]},
    {"sshd_port": 65535, "nginx_ports": [1]},
    {"banaction": "iptables-multiport", "banaction_allports": "iptables-allports"},
], ids=lambda o: ",".join(o) or "defaults")
def test_good_input_has_no_errors(over):
    assert errors(over) == []


BAD = [
    ({"ignoreip": ["192.0.2.10/24"]}, "fail2ban_ignoreip", "not an address or CIDR (host bits must be zero): 192.0.2.10/24"),
    ({"ignoreip": ["not-an-address"]}, "fail2ban_ignoreip", "not an address or CIDR"),
    ({"ignoreip": ["0.0.0.0/0"]}, "fail2ban_ignoreip", "fail2ban_ignoreip: 0.0.0.0/0 covers every IPv4 or IPv6 address"),
    ({"ignoreip": ["192.0.2.10/32", "::/0"]}, "fail2ban_ignoreip", "fail2ban_ignoreip: ::/0 covers every IPv4 or IPv6 address"),
    ({"ignoreip": ["0.0.0.0/0.0.0.0"]}, "fail2ban_ignoreip", "fail2ban_ignoreip: 0.0.0.0/0.0.0.0 covers every"),
    ({"ignoreip": "192.0.2.10/32"}, "fail2ban_ignoreip", "must be a list"),
    ({"bantime": 0}, "fail2ban_bantime", "must be positive"),
    ({"bantime": "1h"}, "fail2ban_bantime", "must be positive; got '1h'"),
    ({"findtime": -1}, "fail2ban_findtime", "must be positive"),
    ({"maxretry": 0}, "fail2ban_maxretry", "must be positive"),
    ({"recidive_bantime": 3600}, "fail2ban_recidive_bantime", "must exceed fail2ban_bantime"),
    ({"recidive_bantime": "forever"}, "fail2ban_recidive_bantime", "must exceed fail2ban_bantime"),
    ({"recidive_maxretry": 0}, "fail2ban_recidive_maxretry", "must be at least 1"),
    ({"sshd_port": 70000}, "fail2ban_sshd_port", "must be a port number (1-65535)"),
    ({"sshd_port": 0}, "fail2ban_sshd_port", "must be a port number (1-65535)"),
    ({"sshd_port": "ssh"}, "fail2ban_sshd_port", "got 'ssh'"),
    ({"sshd_port": True}, "fail2ban_sshd_port", "got True"),
    ({"nginx_ports": []}, "fail2ban_nginx_ports", "must be port numbers (1-65535), at least one"),
    ({"nginx_ports": [80, 0]}, "fail2ban_nginx_ports", "must be port numbers (1-65535); got 0"),
    ({"nginx_ports": [65536]}, "fail2ban_nginx_ports", "got 65536"),
    ({"nginx_ports": "80"}, "fail2ban_nginx_ports", "at least one"),
    ({"banaction": "iptables-multiport"}, "fail2ban_banaction", "fail2ban_banaction and fail2ban_banaction_allports must use the same firewall"),
    ({"banaction_allports": "iptables-allports"}, "fail2ban_banaction", "both nftables or both iptables"),
]


@pytest.mark.parametrize("over,var,fragment", BAD, ids=[f"{i}-{case[1]}" for i, case in enumerate(BAD)])
def test_each_bad_value_gets_one_message_naming_its_variable(over, var, fragment):
    found = errors(over)
    assert_one_message_naming(found, var, fragment)


def test_every_problem_is_reported_not_only_the_first():
    found = errors({"ignoreip": ["192.0.2.10/24", "::/0"], "maxretry": 0, "sshd_port": 70000, "banaction": "iptables-multiport"})
    assert [e.split(" ")[0].rstrip(":") for e in found] == [
        "fail2ban_ignoreip", "fail2ban_ignoreip", "fail2ban_maxretry", "fail2ban_sshd_port", "fail2ban_banaction"]


def test_the_role_tests_stay_for_the_tier_checks():
    """test_plugins/fail2ban.py keeps fail2ban_is_network and fail2ban_covers_every_address
    (tests/roles/test_proxy_tier_bad_input.py uses them); no filter takes their names."""
    tests = load_module(ROLE / "test_plugins" / "fail2ban.py").TestModule().tests()
    assert set(tests) == {"fail2ban_is_network", "fail2ban_covers_every_address"}
    assert set(FAIL2BAN.FilterModule().filters()) == {"fail2ban_input_errors"}
