"""Filters of the nginx_proxy role.

nginx_proxy_port_range_regex(start, end)
    A regular expression (no anchors, no capture groups) that matches exactly the
    decimal numbers from ``start`` to ``end`` inclusive, without leading zeros. The
    sandbox location uses it so that only ports inside the configured range are routed
    (nginx has no numeric comparison; a regex keeps the check in the location match).
nginx_proxy_address_kind(value)
    ``ipv4``, ``ipv6``, ``hostname`` or ``invalid``: the upstream address check.
"""
from __future__ import annotations

import importlib.util
import ipaddress
from pathlib import Path

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[3] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)



def _nines(value: int, count: int) -> int:
    text = str(value)
    if count >= len(text):
        return int("9" * count)
    return int(text[:-count] + "9" * count)


def _zeros(value: int, count: int) -> int:
    return value - value % (10 ** count)


def _stops(start: int, end: int) -> list[int]:
    stops = {end}
    count = 1
    stop = _nines(start, count)
    while start <= stop <= end:
        stops.add(stop)
        count += 1
        stop = _nines(start, count)
    count = 1
    stop = _zeros(end + 1, count) - 1
    while start < stop <= end:
        stops.add(stop)
        count += 1
        stop = _zeros(end + 1, count) - 1
    return sorted(stops)


def _pattern(low: int, high: int) -> str:
    out = []
    for a, b in zip(str(low), str(high)):
        if a == b:
            out.append(a)
        elif a == "0" and b == "9":
            out.append("[0-9]")
        else:
            out.append(f"[{a}-{b}]")
    return "".join(out)


def port_range_regex(start, end) -> str:
    start, end = int(start), int(end)
    if not 0 <= start <= end <= 65535:
        raise ValueError(f"invalid port range {start}-{end}")
    parts = []
    low = start
    for stop in _stops(start, end):
        parts.append(_pattern(low, stop))
        low = stop + 1
    return "(?:" + "|".join(parts) + ")"


def address_kind(value) -> str:
    """'ipv4', 'ipv6', 'hostname' or 'invalid' for an upstream address (no port, no scheme)."""
    text = str(value).strip()
    if not text or text != str(value):
        return "invalid"
    try:
        return "ipv%d" % ipaddress.ip_address(text).version
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    if len(text) > 253 or all(label.isdigit() for label in labels):
        return "invalid"  # 10.0.0.300 is a broken IPv4 address, not a name
    if all(checks.HOST_LABEL.match(label) for label in labels):
        return "hostname"
    return "invalid"



class FilterModule:
    def filters(self):
        return {
            "nginx_proxy_port_range_regex": port_range_regex,
            "nginx_proxy_address_kind": address_kind,
        }
