"""Tests of the fail2ban role.

fail2ban_is_network(value)
    True for an IPv4/IPv6 address or a CIDR network without host bits.
fail2ban_covers_every_address(value)
    True for a network of prefix length 0 in any form (0.0.0.0/0, 0.0.0.0/0.0.0.0, ::/0):
    in fail2ban_ignoreip it would exempt every address of its IP version from bans.
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


def is_network(value) -> bool:
    return checks.is_network(value)


def covers_every_address(value) -> bool:
    return checks.is_whole_address_space(value)


class TestModule:
    def tests(self):
        return {"fail2ban_is_network": is_network, "fail2ban_covers_every_address": covers_every_address}
