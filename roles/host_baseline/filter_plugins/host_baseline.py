"""Filters of the host_baseline role.

host_baseline_is_network(value)
    True for an IPv4/IPv6 address or a CIDR network without host bits (authorized CIDRs).
host_baseline_address_in(address, networks)
    True when the address lies in one of the networks (the lockout check).
"""
from __future__ import annotations

import ipaddress


def is_network(value) -> bool:
    try:
        ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return False
    return True


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
        return {"host_baseline_is_network": is_network, "host_baseline_address_in": address_in}
