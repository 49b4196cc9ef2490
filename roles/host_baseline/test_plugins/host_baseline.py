"""Tests of the host_baseline role.

host_baseline_is_network(value)
    True for an IPv4/IPv6 address or a CIDR network without host bits.
host_baseline_apt_proxy_url(value)
    True for http://ADDRESS:PORT or http://NAME:PORT (an apt proxy such as the package
    relay): no path, query, credentials or other scheme; a bracketed IPv6 address is allowed.
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$", re.I)


def is_network(value) -> bool:
    try:
        ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return False
    return True


def is_apt_proxy_url(value) -> bool:
    if not isinstance(value, str) or not value or any(c.isspace() or c in "\"';" for c in value):
        return False
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme != "http" or not parts.hostname or port is None or not 0 < port < 65536:
        return False
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        return False
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return bool(_NAME.match(parts.hostname)) and not parts.hostname.replace(".", "").isdigit()
    return not (address.is_unspecified or address.is_multicast)


class TestModule:
    def tests(self):
        return {"host_baseline_is_network": is_network, "host_baseline_apt_proxy_url": is_apt_proxy_url}
