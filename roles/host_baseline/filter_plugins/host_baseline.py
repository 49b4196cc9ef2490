"""Filters of the host_baseline role.

host_baseline_address_in(address, networks)
    True when the address lies in one of the networks (the lockout check).
"""
from __future__ import annotations

import ipaddress


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


class FilterModule:
    def filters(self):
        return {"host_baseline_address_in": address_in}
