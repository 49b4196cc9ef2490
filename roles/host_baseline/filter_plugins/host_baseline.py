"""Filters of the host_baseline role.

host_baseline_input_errors(inputs)
    Every check argument specs cannot express; a list of messages, each starting with the
    name of the offending variable (empty when valid). ``inputs`` holds the role's
    variables without the ``host_baseline_`` prefix. Ports may arrive as strings of digits
    (``-e host_baseline_ssh_port=2222``); a list variable must be a list (a string would be
    read one character at a time).
host_baseline_address_in(address, networks)
    True when the address lies in one of the networks (the lockout check).
host_baseline_ufw_stale_rules(added, networks, ports, extra)
    This role's UFW rules (from `ufw show added`) for a source or port no longer authorized.
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

PREFIX = "host_baseline_"
REBOOT_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]*$")
EXTRA_RULE = "each entry needs a source address or CIDR (host bits zero) and a port number (1-65535)"


def _ufw_errors(inputs, ufw_on, errors):
    cidrs = checks.as_list(inputs.get("ufw_authorized_cidrs"))
    if cidrs is None:
        errors.append(f"{PREFIX}ufw_authorized_cidrs must be a list of CIDRs (host bits must be zero); "
                      f"got {inputs.get('ufw_authorized_cidrs')!r}")
    elif not cidrs and ufw_on:
        errors.append(f"{PREFIX}ufw_authorized_cidrs is empty: with UFW enabled nobody could reach SSH, 80 or 443. "
                      f"List the authorized CIDRs or set {PREFIX}ufw_enabled false")
    for value in cidrs or []:
        if not checks.is_network(value):
            errors.append(f"{PREFIX}ufw_authorized_cidrs: not a CIDR (host bits must be zero): {value}")
    ports = checks.as_list(inputs.get("ufw_allowed_ports"))
    if ports is None:
        errors.append(f"{PREFIX}ufw_allowed_ports must be port numbers (1-65535); got {inputs.get('ufw_allowed_ports')!r}")
    for port in ports or []:
        if not checks.is_port(checks.strict_int(port)):
            errors.append(f"{PREFIX}ufw_allowed_ports must be port numbers (1-65535); got {port!r}")
    rules = checks.as_list(inputs.get("ufw_extra_rules"))
    if rules is None:
        errors.append(f"{PREFIX}ufw_extra_rules must be a list of {{source, port}}: {EXTRA_RULE}")
    for i, rule in enumerate(rules or []):
        where = f"{PREFIX}ufw_extra_rules[{i}]"
        if not isinstance(rule, dict):
            errors.append(f"{where}: {EXTRA_RULE}; got {rule!r}")
            continue
        if not checks.is_network(rule.get("source")):
            errors.append(f"{where}: source {rule.get('source')} is not an address or CIDR (host bits must be zero); {EXTRA_RULE}")
        if not checks.is_port(checks.strict_int(rule.get("port"))):
            errors.append(f"{where}: port {rule.get('port')} is not a port number (1-65535); {EXTRA_RULE}")


def host_baseline_input_errors(inputs):
    errors = []
    # The switches as the role's own conditions read them (any true value is on).
    ufw_on, time_on = bool(inputs.get("ufw_enabled")), bool(inputs.get("time_sync_enabled"))
    if not checks.is_port(checks.strict_int(inputs.get("ssh_port"))):
        errors.append(f"{PREFIX}ssh_port must be a port number (1-65535); got {inputs.get('ssh_port')!r}")
    _ufw_errors(inputs, ufw_on, errors)
    servers = checks.as_list(inputs.get("ntp_servers"))
    if time_on and servers is None:
        errors.append(f"{PREFIX}ntp_servers must be a list of servers; got {inputs.get('ntp_servers')!r}")
    elif time_on and not servers:
        errors.append(f"{PREFIX}ntp_servers is empty: time sync needs at least one server")
    if not REBOOT_TIME.match(str(inputs.get("unattended_upgrades_reboot_time"))):
        errors.append(f"{PREFIX}unattended_upgrades_reboot_time must be HH:MM (00:00 to 23:59, e.g. 03:30); "
                      f"got {inputs.get('unattended_upgrades_reboot_time')!r}")
    users = checks.as_list(inputs.get("ssh_allow_users"))
    if users is None:
        errors.append(f"{PREFIX}ssh_allow_users must be a list of user names; got {inputs.get('ssh_allow_users')!r}")
    for user in users or []:
        if not USER_NAME.match(str(user)):
            errors.append(f"{PREFIX}ssh_allow_users: invalid user name {user!r} (a lower-case letter or _, then "
                          "lower-case letters, digits, _ . or -)")
    return errors


def address_in(address, networks) -> bool:
    """True when ``address`` lies in at least one of ``networks`` (CIDRs)."""
    try:
        addr = ipaddress.ip_address(str(address).strip())
    except ValueError:
        return False
    for net in networks or []:
        try:
            if addr in ipaddress.ip_network(str(net), strict=False):
                return True
        except ValueError:
            continue
    return False


_ROLE_RULE = re.compile(r"^ufw allow from (?P<source>\S+) to any port (?P<port>\d+) proto tcp comment 'airlock (?:ssh|service)'$")


def ufw_stale_rules(added, networks, ports, extra=None) -> list[dict]:
    """This role's rules among ``added`` (the lines of ``ufw show added``; its rules carry the
    comment 'airlock ssh' or 'airlock service') whose source or port the settings no longer
    authorize: ``[{"source": ..., "port": ...}]``, to delete. ``networks`` are the authorized
    CIDRs, ``ports`` the SSH port and the service ports, ``extra`` the single rules of
    host_baseline_ufw_extra_rules (``[{"source", "port"}]``). Other rules are never returned."""
    wanted = set()
    for net in networks or []:
        for port in ports or []:
            wanted.add((ipaddress.ip_network(str(net), strict=False), int(port)))
    for rule in extra or []:
        wanted.add((ipaddress.ip_network(str(rule["source"]), strict=False), int(rule["port"])))
    stale = []
    for line in added or []:
        found = _ROLE_RULE.match(str(line).strip())
        if not found:
            continue
        try:
            source = ipaddress.ip_network(found["source"], strict=False)
        except ValueError:
            continue
        if (source, int(found["port"])) not in wanted:
            stale.append({"source": found["source"], "port": int(found["port"])})
    return stale


class FilterModule:
    def filters(self):
        return {"host_baseline_input_errors": host_baseline_input_errors, "host_baseline_address_in": address_in,
                "host_baseline_ufw_stale_rules": ufw_stale_rules}
