"""Unit tests of plugin_utils/airlock_checks.py, the checks the roles' validation filters share,
and that every plugin that uses them loads them (plain Python, no Ansible run)."""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
checks = load_module(ROOT / "plugin_utils" / "airlock_checks.py")


@pytest.mark.parametrize("value,ok", [
    ("10.0.0.1", True), ("2001:db8::1", True), ("10.0.0.0/24", False), ("10.0.0.300", False),
    ("example.com", False), ("", False), (None, False),
])
def test_is_address(value, ok):
    assert checks.is_address(value) is ok


@pytest.mark.parametrize("value,ok", [
    ("10.0.0.0/24", True), ("10.0.0.1", True), ("2001:db8::/32", True), ("0.0.0.0/0", True),
    ("10.0.0.1/24", False), ("10.0.0.0/33", False), ("example.com", False), ("", False),
])
def test_is_network(value, ok):
    assert checks.is_network(value) is ok


@pytest.mark.parametrize("value,ok", [
    ("0.0.0.0/0", True), ("::/0", True), ("0.0.0.0/0.0.0.0", True), ("0.0.0.0/00", True), ("0::0/0", True),
    ("1.2.3.4/0", True), ("0.0.0.0/1", False), ("::/1", False), ("0.0.0.0/255.255.255.255", False),
    ("0.0.0.0", False), ("::", False), ("0/0", False), ("example.com", False), ("", False), (None, False),
])
def test_is_whole_address_space(value, ok):
    assert checks.is_whole_address_space(value) is ok


@pytest.mark.parametrize("value,ok", [
    ("10.0.0.0/24", True), ("0.0.0.0/0", True), ("10.0.0.1/24", False), ("10.0.0.0", False),
    ("10.0.0.0/33", False), ("2001:db8::/32", False), (None, False), (["10.0.0.0/24"], False),
])
def test_is_ipv4_cidr(value, ok):
    assert checks.is_ipv4_cidr(value) is ok


@pytest.mark.parametrize("value,ok", [
    (1, True), (443, True), (65535, True), (0, False), (65536, False), (-1, False),
    (True, False), ("443", False), (443.0, False), (None, False),
])
def test_is_port(value, ok):
    assert checks.is_port(value) is ok


@pytest.mark.parametrize("value,ok", [
    ({"start": 1024, "end": 65535}, True), ({"start": 8000, "end": 8000}, True),
    ({"start": 9000, "end": 8000}, False), ({"start": 0, "end": 10}, False),
    ({"start": 1024}, False), ([1024, 2048], False), (None, False),
])
def test_is_port_range(value, ok):
    assert checks.is_port_range(value) is ok


@pytest.mark.parametrize("value,ok", [
    ("api.openai.com", True), ("API.OpenAI.com", True), ("a.b", True), ("localhost", False),
    ("-bad.example.com", False), ("bad-.example.com", False), ("under_score.example.com", False),
    ("example.com.", False), ("a." * 127 + "com", False), (None, False), (42, False),
])
def test_is_dns_name(value, ok):
    assert checks.is_dns_name(value) is ok


@pytest.mark.parametrize("value,ok", [
    ("api.openai.com", True), ("example.com.", True), ("localhost", False), ("10.0.0.1", False),
    ("host.123", False), ("-a.example.com", False), ("x" * 64 + ".com", False), (None, False),
])
def test_is_fqdn(value, ok):
    assert checks.is_fqdn(value) is ok


@pytest.mark.parametrize("value,ok", [
    ("us-east-1", True), ("eu-central-2", True), ("us-gov-west-1", True),
    ("useast1", False), ("us-east", False), ("US-EAST-1", False),
])
def test_aws_region(value, ok):
    assert bool(checks.AWS_REGION.match(value)) is ok


def test_split_url():
    parts = checks.split_url("https://example.com:8443/v1?x=1")
    assert (parts.scheme, parts.hostname, parts.port, parts.query) == ("https", "example.com", 8443, "x=1")
    for bad in ("http://example.com:99999", "http://exa mple.com", "http://example.com:port", None, 80):
        assert checks.split_url(bad) is None, bad


@pytest.mark.parametrize("value,parts_ok,url_ok", [
    ("http://127.0.0.1:5000", True, True),
    ("https://ec2.eu-west-1.amazonaws.com/", True, True),
    ("http://localhost:5000", True, True),
    ("http://[::1]:5000", True, True),
    ("http://moto_server:5000", True, False),  # parts only: the host itself is not checked
    ("ftp://example.com", False, False),
    ("https://user:pw@example.com", False, False),
    ("https://example.com/?q=1", False, False),
    ("https://example.com/#frag", False, False),
    ("https://example.com:0", False, False),
    ("https://", False, False),
    ("", False, False),
    (None, False, False),
])
def test_endpoint_urls(value, parts_ok, url_ok):
    assert (checks.endpoint_url_parts(value) is not None) is parts_ok
    assert checks.is_endpoint_url(value) is url_ok


def test_aws_vpc_resolver():
    assert checks.aws_vpc_resolver("10.0.0.0/16") == "10.0.0.2"
    assert checks.aws_vpc_resolver("172.31.16.0/20") == "172.31.16.2"
    with pytest.raises(ValueError):
        checks.aws_vpc_resolver("10.0.0.1/16")


PLUGINS = sorted(
    p for p in [*ROOT.glob("filter_plugins/*.py"), *ROOT.glob("roles/*/filter_plugins/*.py"),
                *ROOT.glob("roles/*/test_plugins/*.py")]
    if "plugin_utils" in p.read_text()
)


def test_the_plugins_that_share_the_checks():
    names = {p.stem for p in PLUGINS}
    assert {"airlock_net", "aws_enclave", "egress_firewall", "openhands", "dns_resolver",
            "package_relay", "nginx_proxy", "airlock_snapshots", "host_baseline", "fail2ban"} <= names


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_plugin_loads_the_shared_checks_from_where_it_lies(path):
    module = load_module(path, f"plugin_{path.parent.parent.name}_{path.stem}")
    assert Path(module.checks.__file__).resolve() == (ROOT / "plugin_utils" / "airlock_checks.py").resolve()


@pytest.mark.parametrize("value,expected", [
    (5, 5), ("5", 5), (" -3 ", -3), ("+7", 7), (0, 0),
    (True, None), (False, None), (1.5, None), ("1.5", None), ("five", None), (None, None), ([], None)])
def test_strict_int_takes_whole_numbers_and_their_digits_only(value, expected):
    """A bool is not a number here (True would pass as 1), nor is a float."""
    assert checks.strict_int(value) == expected


@pytest.mark.parametrize("value,expected", [
    ([1, 2], [1, 2]), ((1,), [1]), ("", []), ([], []), ("a,b", None), (None, None), ({"a": 1}, None), (3, None)])
def test_as_list_takes_lists_and_the_empty_string_only(value, expected):
    assert checks.as_list(value) == expected


@pytest.mark.parametrize("value,expected", [
    ("12", 12), (12, 12), (3.9, 3), ("3.9", 3), (True, 1), ("x", 0), (None, 0), ([], 0)])
def test_jinja_int_reads_a_value_as_jinjas_int_filter_does(value, expected):
    assert checks.jinja_int(value) == expected
