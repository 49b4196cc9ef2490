"""Filters of the host_baseline role.

host_baseline_address_in(address, networks)
    True when the address lies in one of the networks (the lockout check).
host_baseline_ufw_stale_rules(added, networks, ports, extra)
    This role's UFW rules (from `ufw show added`) for a source or port no longer authorized.
"""
from __future__ import annotations

import ipaddress
import re


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
        return {"host_baseline_address_in": address_in, "host_baseline_ufw_stale_rules": ufw_stale_rules}
