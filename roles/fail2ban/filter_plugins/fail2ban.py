"""Filters of the fail2ban role (plain Python, unit-testable).

fail2ban_input_errors(inputs)
    Every check argument specs cannot express; a list of messages, each starting with the
    name of the offending variable (empty when valid). ``inputs`` holds the role's
    variables without the ``fail2ban_`` prefix.

Numbers and ports may arrive as strings of digits (``-e fail2ban_sshd_port=2222``): they
count as the number. The role's tests (fail2ban_is_network, fail2ban_covers_every_address)
are in test_plugins/fail2ban.py.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[3] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

PREFIX = "fail2ban_"


def _ignoreip_errors(inputs, errors):
    entries = checks.as_list(inputs.get("ignoreip"))
    if entries is None:
        errors.append(f"{PREFIX}ignoreip must be a list of addresses or CIDRs (host bits must be zero); "
                      f"got {inputs.get('ignoreip')!r}")
        return
    for value in entries:
        if not checks.is_network(value):
            errors.append(f"{PREFIX}ignoreip: not an address or CIDR (host bits must be zero): {value}")
        elif checks.is_whole_address_space(value):
            errors.append(f"{PREFIX}ignoreip: {value} covers every IPv4 or IPv6 address (prefix length 0): "
                          "fail2ban would never ban any of them. List only your operators' own addresses (a VPN exit /32, say)")


def _time_errors(inputs, errors):
    numbers = {}
    for name, low in (("bantime", 1), ("findtime", 1), ("maxretry", 1)):
        numbers[name] = checks.strict_int(inputs.get(name))
        if numbers[name] is None or numbers[name] < low:
            errors.append(f"{PREFIX}{name} must be positive; got {inputs.get(name)!r}")
    recidive = checks.strict_int(inputs.get("recidive_bantime"))
    bantime = numbers["bantime"]
    if recidive is None or (bantime is not None and recidive <= bantime):
        errors.append(f"{PREFIX}recidive_bantime must exceed {PREFIX}bantime; got {inputs.get('recidive_bantime')!r} "
                      f"({PREFIX}bantime {inputs.get('bantime')!r})")
    retries = checks.strict_int(inputs.get("recidive_maxretry"))
    if retries is None or retries < 1:
        errors.append(f"{PREFIX}recidive_maxretry must be at least 1; got {inputs.get('recidive_maxretry')!r}")


def _port_errors(inputs, errors):
    if not checks.is_port(checks.strict_int(inputs.get("sshd_port"))):
        errors.append(f"{PREFIX}sshd_port must be a port number (1-65535); got {inputs.get('sshd_port')!r}")
    ports = checks.as_list(inputs.get("nginx_ports"))
    if not ports:
        errors.append(f"{PREFIX}nginx_ports must be port numbers (1-65535), at least one; got {inputs.get('nginx_ports')!r}")
        return
    for port in ports:
        if not checks.is_port(checks.strict_int(port)):
            errors.append(f"{PREFIX}nginx_ports must be port numbers (1-65535); got {port!r}")


def fail2ban_input_errors(inputs):
    errors = []
    _ignoreip_errors(inputs, errors)
    _time_errors(inputs, errors)
    _port_errors(inputs, errors)
    banaction, allports = inputs.get("banaction"), inputs.get("banaction_allports")
    if str(banaction).split("-")[0] != str(allports).split("-")[0]:
        errors.append(f"{PREFIX}banaction and {PREFIX}banaction_allports must use the same firewall (both nftables or "
                      f"both iptables); got {banaction} and {allports}")
    return errors


class FilterModule:
    def filters(self):
        return {"fail2ban_input_errors": fail2ban_input_errors}
