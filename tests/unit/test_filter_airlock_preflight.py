"""filter_plugins/airlock_preflight.py: a refusal names the airlock_* values behind the role's
variable, read from the shared mapping."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]

PRE = load_module(ROOT / "filter_plugins" / "airlock_preflight.py")
SERVER = ROOT / "inventories" / "common" / "group_vars" / "openhands.yml"
PROXY = ROOT / "inventories" / "common" / "group_vars" / "proxy.yml"


@pytest.mark.parametrize("mapping,msg,sentence", [
    (SERVER, "egress_firewall_ntp_servers: 'x!' is not an IP address", "egress_firewall_ntp_servers is set from airlock_ntp_servers"),
    (SERVER, "egress_firewall_host_services[0] (s3) needs hosts or cidrs", "egress_firewall_host_services is set from airlock_host_services"),
    (PROXY, "nginx_proxy_server_name: 'a b' is not a DNS name", "nginx_proxy_server_name is set from airlock_public_hostname"),
    # A template reading several values names each, once (sorted).
    (SERVER, "host_baseline_apt_proxy: bad URL",
     "host_baseline_apt_proxy is set from airlock_package_relay, airlock_package_relay_port, airlock_proxy_private_address"),
])
def test_a_mapped_variable_gets_the_airlock_values_it_is_set_from(mapping, msg, sentence):
    out = PRE.airlock_mapped_from(msg, str(mapping))
    assert out.startswith(msg + "\n"), "the role's own message must stay as it was, first"
    assert sentence in out


def test_only_the_named_variables_and_only_whole_names():
    out = PRE.airlock_mapped_from("openhands_port: 0 is not a port", str(SERVER))
    assert "openhands_port is set from airlock_openhands_port" in out
    # egress_firewall_openhands_port contains the name but is not named by the message.
    assert "egress_firewall_openhands_port" not in out
    # A prefix of a longer name is not that name.
    assert PRE.airlock_mapped_from("openhands_port_range: bad", str(SERVER)) == "openhands_port_range: bad"


@pytest.mark.parametrize("msg,mapping", [
    ("openhands_docker_install_method: snap", SERVER),     # the inventory set the role's own variable
    ("egress_firewall_ntp_servers: bad", "/nonexistent/mapping.yml"),  # no mapping: unchanged
    ("egress_firewall_ntp_servers: bad", ""),
    ("", SERVER),
])
def test_nothing_is_added_without_a_mapped_variable(msg, mapping):
    assert PRE.airlock_mapped_from(msg, str(mapping)) == msg


def test_a_mapping_that_is_not_a_dictionary_adds_nothing(tmp_path):
    bad = tmp_path / "mapping.yml"
    bad.write_text("- a\n- b\n")
    assert PRE.airlock_mapped_from("a: bad", str(bad)) == "a: bad"
    assert PRE.airlock_mapped_from(None, str(SERVER)) == ""
