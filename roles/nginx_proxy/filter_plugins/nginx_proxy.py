"""Filters of the nginx_proxy role.

nginx_proxy_port_range_regex(start, end)
    A regular expression (no anchors, no capture groups) that matches exactly the
    decimal numbers from ``start`` to ``end`` inclusive, without leading zeros. The
    sandbox location uses it so that only ports inside the configured range are routed
    (nginx has no numeric comparison; a regex keeps the check in the location match).
nginx_proxy_address_kind(value)
    ``ipv4``, ``ipv6``, ``hostname`` or ``invalid``: the upstream address check.
nginx_proxy_session_input_errors(inputs)
    The session settings argument specs cannot check: a list of messages, each starting
    with the variable at fault (empty when valid). ``inputs`` holds the variables without
    the ``nginx_proxy_`` prefix: session_enabled, session_idle_timeout,
    session_absolute_timeout, session_cookie_name, session_key_generation,
    basic_auth_api.
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

PREFIX = "nginx_proxy_"
# A cookie name nginx's map regex and the njs handler take as it is: letters, digits, _ and -,
# optionally after the __Host- prefix (Secure, Path=/, no Domain: browsers enforce it).
COOKIE_NAME = re.compile(r"^(?:__Host-)?[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
MAX_ABSOLUTE = 30 * 86400


def _int(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def session_input_errors(inputs) -> list[str]:
    errors = []
    for name in ("session_enabled", "basic_auth_api"):
        if not isinstance(inputs.get(name), bool):
            errors.append(f"{PREFIX}{name}: {inputs.get(name)!r} is not true or false")
    idle, absolute = _int(inputs.get("session_idle_timeout")), _int(inputs.get("session_absolute_timeout"))
    if absolute is None or not 60 <= absolute <= MAX_ABSOLUTE:
        errors.append(f"{PREFIX}session_absolute_timeout: {inputs.get('session_absolute_timeout')!r} is not a number "
                      f"of seconds from 60 to {MAX_ABSOLUTE} (30 days)")
    if idle is None or idle < 60:
        errors.append(f"{PREFIX}session_idle_timeout: {inputs.get('session_idle_timeout')!r} is not a number of "
                      "seconds of at least 60")
    elif absolute is not None and idle > absolute:
        errors.append(f"{PREFIX}session_idle_timeout: {idle} is longer than {PREFIX}session_absolute_timeout "
                      f"({absolute}): a session would never end for being idle")
    name = inputs.get("session_cookie_name")
    if not isinstance(name, str) or not COOKIE_NAME.match(name):
        errors.append(f"{PREFIX}session_cookie_name: {name!r} is not a cookie name of letters, digits, _ and - "
                      "(optionally after __Host-)")
    generation = _int(inputs.get("session_key_generation"))
    if generation is None or generation < 1:
        errors.append(f"{PREFIX}session_key_generation: {inputs.get('session_key_generation')!r} is not a "
                      "positive whole number")
    if inputs.get("basic_auth_api") is True and inputs.get("session_enabled") is False:
        errors.append(f"{PREFIX}basic_auth_api is true while {PREFIX}session_enabled is false: without sessions "
                      "every request already uses HTTP Basic; set it false (or turn sessions on)")
    return errors


class FilterModule:
    def filters(self):
        return {
            "nginx_proxy_port_range_regex": port_range_regex,
            "nginx_proxy_address_kind": address_kind,
            "nginx_proxy_session_input_errors": session_input_errors,
        }
