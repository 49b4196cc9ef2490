"""Filters of the package_relay role (plain Python, unit tested in tests/unit).

package_relay_input_errors(inputs)
    Every check argument specs cannot express: a list of messages, each starting with the
    name of the offending variable (empty when the input is valid). ``inputs`` holds the
    role's variables without the ``package_relay_`` prefix.
package_relay_remaps(hosts)
    The apt-cacher-ng ``Remap-`` entries of the allow list: ``[{"name", "host"}]``, one per
    host, so that a request for one mirror is never served from another.
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

PREFIX = "package_relay_"


def _host_ok(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return bool(checks.DNS_NAME.match(value)) and not value.replace(".", "").isdigit()
    return not (address.is_unspecified or address.is_loopback or address.is_multicast)


def package_relay_input_errors(inputs):
    errors = []
    listen = inputs.get("listen_address")
    try:
        address = ipaddress.ip_address(str(listen))
    except ValueError:
        errors.append(f"{PREFIX}listen_address: {listen!r} is not an IP address (the proxy's private address)")
    else:
        if address.is_unspecified or address.is_loopback or address.is_multicast or address.is_link_local:
            errors.append(f"{PREFIX}listen_address: {listen} is not a private unicast address of the proxy "
                          "(never all addresses, loopback or link-local)")
        elif address.is_global:
            errors.append(f"{PREFIX}listen_address: {listen} is a public address; the relay listens on the "
                          "proxy's private address only")
    port = checks.strict_int(inputs.get("port"))
    if port is None or not 1024 <= port <= 65535:
        errors.append(f"{PREFIX}port: {inputs.get('port')!r} is not a TCP port from 1024 to 65535")
    hosts = inputs.get("allowed_hosts")
    if not isinstance(hosts, list):
        errors.append(f"{PREFIX}allowed_hosts must be a list of host names")
        hosts = []
    seen = set()
    for host in hosts:
        if not _host_ok(host):
            errors.append(f"{PREFIX}allowed_hosts: {host!r} is not one exact host name or address "
                          "(no wildcard, scheme, port or path)")
        elif str(host).lower() in seen:
            errors.append(f"{PREFIX}allowed_hosts: {host!r} is listed twice")
        seen.add(str(host).lower())
    days = checks.strict_int(inputs.get("expire_days"))
    if days is None or not 1 <= days <= 365:
        errors.append(f"{PREFIX}expire_days: {inputs.get('expire_days')!r} is not a number of days from 1 to 365")
    return errors


def package_relay_remaps(hosts):
    out = []
    for index, host in enumerate(hosts or []):
        text = str(host).lower()
        if ":" in text:  # an IPv6 address: bracketed, as in a URL
            text = f"[{text}]"
        out.append({"name": f"airlock{index}", "host": text})
    return out


class FilterModule:
    def filters(self):
        return {
            "package_relay_input_errors": package_relay_input_errors,
            "package_relay_remaps": package_relay_remaps,
        }
