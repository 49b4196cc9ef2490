"""ansible.cfg keeps no facts between runs.

The lockout guards (host_baseline's and egress_firewall's) read the SSH session that the
run logs in with (SSH_CLIENT, SSH_CONNECTION) from the gathered facts. With `gathering =
smart` a persistent fact cache is not re-gathered, so a second run within the cache's
lifetime would check the session of the first: another address (the operator moved), or
another lab whose hosts carry the same names (the test suite runs several labs at once).
"""
from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_persistent_fact_cache():
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "ansible.cfg")
    defaults = cfg["defaults"]
    assert defaults.get("fact_caching", "memory") == "memory", dict(defaults)
    assert defaults.get("gathering") == "smart"
