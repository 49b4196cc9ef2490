"""The input checks every role's validation filters share (plain Python, standard library only).

Not a plugin itself: each filter or test plugin loads this file by path, right after its
imports (plugins of a project that is not a collection have no import path for shared
code; see docs/contributing.md), so each check is written once and unit tested once
(tests/unit/test_airlock_checks.py). Each role keeps its own messages; these return only
True/False (or the parsed URL).
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# A DNS name of at least two RFC 1123 labels (any case, no trailing dot, at most 253 characters).
DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$", re.I)
# One RFC 1123 label.
HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.I)
# An AWS region name (us-east-1, eu-central-2, us-gov-west-1).
AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
# A KMS key by ARN (a key id or a multi-Region key id), in any partition.
KMS_KEY_ARN = re.compile(
    r"^arn:aws(?:-cn|-us-gov|-iso|-iso-b)?:kms:[a-z0-9-]+:[0-9]{12}:key/"
    r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$"
)


def is_address(value) -> bool:
    """True for one IPv4 or IPv6 address (anything whose str() is one)."""
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def is_network(value) -> bool:
    """True for an address or a CIDR network without host bits (10.0.0.0/24 yes, 10.0.0.1/24 no)."""
    try:
        ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return False
    return True


def is_whole_address_space(value) -> bool:
    """True for a network of prefix length 0, in any form ipaddress reads (0.0.0.0/0,
    0.0.0.0/0.0.0.0, 0.0.0.0/00, ::/0, host bits set or not): every address of its IP
    version. False for anything else, a value that is no network included."""
    try:
        return ipaddress.ip_network(str(value), strict=False).prefixlen == 0
    except ValueError:
        return False


def is_ipv4_cidr(value) -> bool:
    """True for a string that is an IPv4 network in CIDR notation with no host bits set."""
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.IPv4Network(value, strict=True)
    except (ValueError, TypeError):
        return False
    return True


def is_port(value) -> bool:
    """True for an int (not a bool) from 1 to 65535."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def is_port_range(value) -> bool:
    """True for a mapping {start, end} of ports with start <= end."""
    return (
        isinstance(value, dict)
        and is_port(value.get("start"))
        and is_port(value.get("end"))
        and value["start"] <= value["end"]
    )


def is_dns_name(value) -> bool:
    """True for a string that is a DNS name of at least two labels (see DNS_NAME)."""
    return isinstance(value, str) and bool(DNS_NAME.match(value))


def is_fqdn(value) -> bool:
    """True for a fully qualified DNS name: RFC 1123 labels, at least one dot, a trailing dot
    allowed, a last label that is not all digits."""
    if not isinstance(value, str) or len(value) > 253:
        return False
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    if len(labels) < 2 or labels[-1].isdigit():
        return False
    return all(HOST_LABEL.match(label) for label in labels)


def split_url(value):
    """The urlsplit() parts of a string without whitespace whose port (if any) parses; else None."""
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return None
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        return None
    return parts


def endpoint_url_parts(value):
    """The parts of an http(s)://host[:port][/path] URL with no credentials, query or fragment
    (an API endpoint override); None for anything else. The host itself is not checked."""
    parts = split_url(value)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username or parts.password or parts.query or parts.fragment:
        return None
    if parts.port is not None and not 0 < parts.port < 65536:
        return None
    return parts


def is_endpoint_url(value) -> bool:
    """True for an endpoint URL (endpoint_url_parts) whose host is an address, localhost or an FQDN."""
    parts = endpoint_url_parts(value)
    if parts is None:
        return False
    host = parts.hostname
    return is_address(host) or host == "localhost" or is_fqdn(host)



def aws_vpc_resolver(vpc_cidr) -> str:
    """The Amazon-provided DNS resolver of a VPC: the VPC's base address plus two (the
    inventory's DNS servers and aws_enclave's security group rules both need it)."""
    return str(ipaddress.IPv4Network(str(vpc_cidr), strict=True).network_address + 2)


def aws_partition(region) -> str:
    """The AWS partition of a region (the second field of its ARNs): aws, aws-cn,
    aws-us-gov, aws-iso or aws-iso-b."""
    region = str(region)
    for prefix, partition in (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"), ("us-isob-", "aws-iso-b"),
                              ("us-iso-", "aws-iso")):
        if region.startswith(prefix):
            return partition
    return "aws"


def strict_int(value):
    """An int (not a bool), or a string of digits as its number; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.match(r"^\s*[-+]?\d+\s*$", value):
        return int(value)
    return None


def as_list(value):
    """The entries of a list; an empty string is an empty list; None for anything else."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return [] if value == "" else None


def jinja_int(value, default=0):
    """Jinja's `| int`: a string of digits is its number, a float is truncated, anything
    that is not a number is `default`."""
    try:
        if isinstance(value, str):
            return int(value, 10)
        return int(value)
    except (TypeError, ValueError, OverflowError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return default
