"""Unit tests of the dns_resolver role's filters (which names are answered, input checks),
of its airlock-dns-allow command's parsing of unbound's zones, and of how the egress
firewall's sets tool hands the maintenance window's names to it. The resolver itself is
proven in Molecule (dns_resolver, server_tier)."""
from __future__ import annotations

from pathlib import Path

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]

F = load_module(ROOT / "roles/dns_resolver/filter_plugins/dns_resolver.py")
ALLOW = load_module(ROOT / "roles/dns_resolver/files/airlock-dns-allow", "airlock_dns_allow")
SETS = load_module(ROOT / "roles/egress_firewall/files/airlock-egress-sets", "airlock_egress_sets_dns")
OK = {"upstreams": ["10.0.0.2"], "llm_endpoints": [], "allowed_names": [], "manage_resolv_conf": True}


def test_endpoint_names_are_the_hosts_and_the_bedrock_name_once_each():
    endpoints = [{"name": "a", "hosts": ["API.example.org", "api.example.org."]},
                 {"name": "b", "cidrs": ["192.0.2.0/24"]},
                 {"name": "c", "bedrock": True, "region": "eu-west-1"}]
    assert F.dns_resolver_endpoint_names(endpoints) == ["api.example.org", "bedrock-runtime.eu-west-1.amazonaws.com"]
    assert F.dns_resolver_endpoint_names([]) == []


def test_valid_input_has_no_errors():
    assert F.dns_resolver_input_errors(OK) == []
    assert F.dns_resolver_input_errors({**OK, "upstreams": ["fd00::2"], "allowed_names": ["extra.example.org"]}) == []
    assert F.dns_resolver_input_errors({**OK, "host_services": [{"name": "s3", "cidrs": ["198.51.100.0/24"]},
                                                                {"name": "logs", "hosts": ["logs.us-east-1.amazonaws.com"]}]}) == []


def test_each_error_names_its_variable():
    cases = [({"upstreams": []}, "dns_resolver_upstreams must list"),
             ({"upstreams": ["127.0.0.53"]}, "dns_resolver_upstreams[0]: 127.0.0.53 is a loopback"),
             ({"upstreams": ["0.0.0.0"]}, "dns_resolver_upstreams[0]: 0.0.0.0 is a loopback or unspecified"),
             ({"llm_endpoints": "api.example.org"}, "dns_resolver_llm_endpoints must be a list"),
             ({"llm_endpoints": [{"name": "x", "hosts": ["a b.example.org"]}]}, "dns_resolver_llm_endpoints[0].hosts[0]"),
             ({"allowed_names": ["com"]}, "dns_resolver_allowed_names[0]"),
             ({"host_services": [{"name": "logs", "hosts": ["logs example org"]}]}, "dns_resolver_host_services[0].hosts[0]"),
             ({"host_services": "logs.example.org"}, "dns_resolver_host_services must be a list"),
             ({"manage_resolv_conf": "yes"}, "dns_resolver_manage_resolv_conf")]
    for change, message in cases:
        errors = F.dns_resolver_input_errors({**OK, **change})
        assert any(e.startswith(message) for e in errors), (change, errors)


def test_allow_command_reads_the_zones_of_the_configuration_and_of_unbound_control():
    conf = '''server:
    local-zone: "." refuse
    local-zone: "api.example.org." transparent
    local-zone: "bedrock-runtime.eu-west-1.amazonaws.com." transparent
    interface: 127.0.0.1
'''
    assert ALLOW.zones(conf) == {".": "refuse", "api.example.org": "transparent",
                                 "bedrock-runtime.eu-west-1.amazonaws.com": "transparent"}
    listed = ". refuse\napi.example.org. transparent\nmirror.example.org. transparent\nlocalhost. redirect\n"
    assert ALLOW.zones(listed, listing=True) == {".": "refuse", "api.example.org": "transparent",
                                                 "mirror.example.org": "transparent", "localhost": "redirect"}


def test_sets_tool_hands_the_windows_host_names_to_the_command(tmp_path):
    log = tmp_path / "calls"
    command = tmp_path / "allow"
    command.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\necho changed\n")
    command.chmod(0o755)
    entries = [{"name": "mirror", "hosts": ["Deb.Example.org", "deb.example.org"], "ports": [443]},
               {"name": "fixed", "cidrs": ["192.0.2.0/24"]}]
    assert SETS.allow_names(str(command), entries) == (True, None)
    assert SETS.allow_names(str(command), []) == (True, None)
    assert log.read_text().splitlines() == ["--maintenance deb.example.org", "--maintenance"]
    assert SETS.allow_names("", entries) == (False, None)
    changed, error = SETS.allow_names(str(tmp_path / "missing"), entries)
    assert not changed and "cannot run" in error
