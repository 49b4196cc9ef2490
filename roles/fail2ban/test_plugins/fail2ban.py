"""Tests of the fail2ban role.

fail2ban_is_network(value)
    True for an IPv4/IPv6 address or a CIDR network without host bits.
"""
from __future__ import annotations

import ipaddress


def is_network(value) -> bool:
    try:
        ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return False
    return True


class TestModule:
    def tests(self):
        return {"fail2ban_is_network": is_network}
