"""Unit tests of the package_relay role's filters and host_baseline's apt proxy test."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]

PR = load_module(ROOT / "roles/package_relay/filter_plugins/package_relay.py")
HB_TESTS = load_module(ROOT / "roles/host_baseline/test_plugins/host_baseline.py")

GOOD = {"listen_address": "10.0.0.10", "port": 3142, "allowed_hosts": ["us-east-1.ec2.archive.ubuntu.com",
        "security.ubuntu.com"], "expire_days": 4}


def test_good_input_has_no_errors():
    assert PR.package_relay_input_errors(GOOD) == []
    assert PR.package_relay_input_errors({**GOOD, "allowed_hosts": [], "port": "3142"}) == []


@pytest.mark.parametrize("over,fragment", [
    ({"listen_address": ""}, "package_relay_listen_address: '' is not an IP address"),
    ({"listen_address": "0.0.0.0"}, "package_relay_listen_address: 0.0.0.0"),
    ({"listen_address": "::"}, "package_relay_listen_address: ::"),
    ({"listen_address": "127.0.0.1"}, "package_relay_listen_address: 127.0.0.1"),
    ({"listen_address": "169.254.169.254"}, "package_relay_listen_address"),
    ({"listen_address": "52.1.2.3"}, "is a public address"),
    ({"port": 0}, "package_relay_port"),
    ({"port": 443}, "package_relay_port"),
    ({"port": 65536}, "package_relay_port"),
    ({"port": True}, "package_relay_port"),
    ({"allowed_hosts": "deb.debian.org"}, "package_relay_allowed_hosts must be a list"),
    ({"allowed_hosts": ["*.ec2.archive.ubuntu.com"]}, "package_relay_allowed_hosts"),
    ({"allowed_hosts": ["deb.debian.org/debian"]}, "package_relay_allowed_hosts"),
    ({"allowed_hosts": ["deb.debian.org:80"]}, "package_relay_allowed_hosts"),
    ({"allowed_hosts": ["localhost"]}, "package_relay_allowed_hosts"),
    ({"allowed_hosts": ["127.0.0.1"]}, "package_relay_allowed_hosts"),
    ({"allowed_hosts": ["0.0.0.0"]}, "package_relay_allowed_hosts"),
    ({"allowed_hosts": ["a.example.org", "A.example.org"]}, "listed twice"),
    ({"expire_days": 0}, "package_relay_expire_days"),
    ({"expire_days": "many"}, "package_relay_expire_days"),
])
def test_bad_input_is_named(over, fragment):
    errors = PR.package_relay_input_errors({**GOOD, **over})
    assert any(fragment in e for e in errors), errors


def test_one_remap_per_host():
    assert PR.package_relay_remaps(["Deb.Debian.org", "10.0.0.30", "2001:db8::30"]) == [
        {"name": "airlock0", "host": "deb.debian.org"}, {"name": "airlock1", "host": "10.0.0.30"},
        {"name": "airlock2", "host": "[2001:db8::30]"}]


@pytest.mark.parametrize("value,ok", [
    ("http://10.0.0.10:3142", True), ("http://10.0.0.10:3142/", True), ("http://relay.internal:3142", True),
    ("http://[fd00::10]:3142", True), ("https://10.0.0.10:3142", False), ("http://10.0.0.10", False),
    ("http://10.0.0.10:3142/debian", False), ("http://user:pw@10.0.0.10:3142", False), ("http://0.0.0.0:3142", False),
    ('http://10.0.0.10:3142";', False), ("http://10.0.0.10:3142?x=1", False), ("", False), (None, False),
    ("http://10.0.0.10:99999", False),
])
def test_apt_proxy_url(value, ok):
    assert HB_TESTS.is_apt_proxy_url(value) is ok
