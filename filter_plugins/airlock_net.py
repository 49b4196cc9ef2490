"""Network filters shared by playbooks, the inventory and the tier roles (plain Python,
standard library only, ``ipaddress`` for all address arithmetic; unit tested in
tests/unit/test_filter_airlock_net.py). The checks themselves are
plugin_utils/airlock_checks.py's; the AWS enclave's input checks and its security group
and network ACL builders are the aws_enclave role's own filters
(roles/aws_enclave/filter_plugins/aws_enclave.py).

Filters
-------
airlock_is_ipv4_cidr(value)
    True when ``value`` is an IPv4 network in CIDR notation with no host bits set
    (``10.0.0.0/24`` yes; ``10.0.0.1/24``, ``10.0.0.0``, ``10.0.0.0/33`` no).
airlock_cidr_within(inner, outer)
    True when network ``inner`` lies entirely inside network ``outer``.
airlock_all_within(inner_list, outer_list)
    True when every network of ``inner_list`` lies inside some network of ``outer_list``.
airlock_cidrs_overlap(a, b)
    True when the two networks share at least one address.
airlock_is_world_cidr(value)
    True for a network that covers every IPv4 address (``0.0.0.0/0``).
airlock_world_entries(values)
    The entries of ``values`` that cover every address of their IP version: prefix length
    0 in any form ipaddress reads (``0.0.0.0/0``, ``0.0.0.0/0.0.0.0``, ``::/0``).
airlock_vpc_resolver(vpc_cidr)
    The Amazon-provided DNS resolver of a VPC: its base address plus two (the AWS
    inventory's ``airlock_dns_servers``).
airlock_is_hostname(value)
    True for a fully qualified DNS name (RFC 1123 labels, at least one dot).
airlock_is_endpoint_url(value)
    True for an ``http(s)://host[:port][/path]`` URL (the API endpoint override).
"""
from __future__ import annotations

import importlib.util
import ipaddress
from pathlib import Path

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[1] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)


def _net(value):
    return ipaddress.IPv4Network(str(value), strict=True)


def airlock_is_ipv4_cidr(value):
    """True when value is an IPv4 network in CIDR notation with no host bits set."""
    return checks.is_ipv4_cidr(value)


def airlock_cidr_within(inner, outer):
    """True when network inner lies entirely inside network outer."""
    return _net(inner).subnet_of(_net(outer))


def airlock_all_within(inner_list, outer_list):
    """True when every network of inner_list lies inside some network of outer_list (of the
    same IP version); False for an empty inner_list."""
    inner = [ipaddress.ip_network(str(n), strict=False) for n in inner_list or []]
    outer = [ipaddress.ip_network(str(n), strict=False) for n in outer_list or []]
    return bool(inner) and all(any(i.version == o.version and i.subnet_of(o) for o in outer) for i in inner)


def airlock_cidrs_overlap(a, b):
    """True when networks a and b share at least one address."""
    return _net(a).overlaps(_net(b))


def airlock_is_world_cidr(value):
    """True for a network that covers the whole IPv4 address space."""
    return checks.is_ipv4_cidr(value) and _net(value).prefixlen == 0


def airlock_world_entries(values):
    """The entries of values that cover every address of their IP version (prefix length 0
    in any form: 0.0.0.0/0, 0.0.0.0/0.0.0.0, ::/0), in their order, as given."""
    return [v for v in values or [] if checks.is_whole_address_space(v)]


def airlock_vpc_resolver(vpc_cidr):
    """The Amazon-provided DNS resolver of a VPC: the VPC base address plus two."""
    return checks.aws_vpc_resolver(vpc_cidr)


def airlock_is_hostname(value):
    """True for a fully qualified DNS name: RFC 1123 labels, at least one dot."""
    return checks.is_fqdn(value)


def airlock_is_endpoint_url(value):
    """True for an http(s)://host[:port][/path] URL with no credentials or query."""
    return checks.is_endpoint_url(value)


class FilterModule:
    """airlock network filters (see the module docstring)."""

    def filters(self):
        return {
            "airlock_is_ipv4_cidr": airlock_is_ipv4_cidr,
            "airlock_cidr_within": airlock_cidr_within,
            "airlock_all_within": airlock_all_within,
            "airlock_cidrs_overlap": airlock_cidrs_overlap,
            "airlock_is_world_cidr": airlock_is_world_cidr,
            "airlock_world_entries": airlock_world_entries,
            "airlock_vpc_resolver": airlock_vpc_resolver,
            "airlock_is_hostname": airlock_is_hostname,
            "airlock_is_endpoint_url": airlock_is_endpoint_url,
        }
