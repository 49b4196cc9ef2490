"""Tests of the host_baseline role.

host_baseline_is_network(value)
    True for an IPv4/IPv6 address or a CIDR network without host bits.
host_baseline_apt_proxy_url(value)
    True for http://ADDRESS:PORT or http://NAME:PORT (an apt proxy such as the package
    relay): no path, query, credentials or other scheme; a bracketed IPv6 address is allowed.
"""
from __future__ import annotations

import importlib.util
import ipaddress
import re
from pathlib import Path

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[3] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$", re.I)


def is_apt_proxy_url(value) -> bool:
    if not isinstance(value, str) or not value or any(c in "\"';" for c in value):
        return False
    parts = checks.split_url(value)
    if parts is None:
        return False
    port = parts.port
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
        return {"host_baseline_is_network": checks.is_network, "host_baseline_apt_proxy_url": is_apt_proxy_url}
