"""playbooks/validate.yml runs on both providers: every validate_* value it reads is set in
each provider's inventory (the lab's and AWS's), except the ones the playbook sets itself or
gives a default."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = (ROOT / "playbooks" / "validate.yml").read_text()
# Set by the playbook itself (set_fact), a group name, or read with a default.
OWN = {"validate_rows", "validate_sandbox_port", "validate_outsiders"}


def used() -> set[str]:
    names = set(re.findall(r"\bvalidate_[a-z0-9_]+", PLAYBOOK)) - OWN
    defaulted = set(re.findall(r"\b(validate_[a-z0-9_]+)\s*\|\s*default\(", PLAYBOOK))
    return names - defaulted


def defined(provider: str) -> set[str]:
    names = set()
    for path in (ROOT / "inventories" / provider).rglob("*.yml"):
        data = yaml.safe_load(path.read_text()) or {}
        if isinstance(data, dict):
            names |= {k for k in data if k.startswith("validate_")}
    return names


def test_the_playbook_reads_inventory_values():
    assert {"validate_canaries", "validate_llm_url", "validate_login_password_file"} <= used()


@pytest.mark.parametrize("provider", ["lab", "aws"])
def test_every_value_validate_reads_is_set_by_the_provider(provider):
    missing = sorted(used() - defined(provider))
    assert not missing, f"inventories/{provider} does not set {missing}"
