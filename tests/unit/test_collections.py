"""The installed Ansible collections satisfy collections/requirements.yml.

The README promises that setup works where Ansible Galaxy is unreachable because the
pinned `ansible` bundle already carries every collection in the ranges we test with.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
check = load_module(ROOT / "tools" / "check_collections.py")

REQUIREMENTS = ROOT / "collections" / "requirements.yml"
# A task's module key or a module_defaults group, written as a fully qualified name.
FQCN = re.compile(r"^\s*(?:-\s+)?(?:group/)?((?:amazon|community|ansible)\.[a-z_]+)\.[a-z_0-9]+:", re.MULTILINE)


@pytest.fixture(scope="module")
def installed():
    return check.installed()


def test_every_required_collection_is_installed_in_range(installed):
    assert check.problems(check.required(REQUIREMENTS), installed) == []


def test_every_collection_the_code_uses_is_required():
    required = set(check.required(REQUIREMENTS)) | {"ansible.builtin"}
    used = set()
    for base in ("roles", "playbooks", "molecule", "site.yml"):
        paths = [ROOT / base] if base.endswith(".yml") else (ROOT / base).rglob("*.yml")
        for path in paths:
            if path.exists():
                used.update(FQCN.findall(path.read_text(encoding="utf-8")))
    assert used, "no module names found at all: the scan is broken"
    assert used <= required, f"used but not in collections/requirements.yml: {sorted(used - required)}"


def test_checker_reports_out_of_range_and_missing():
    req = {"amazon.aws": SpecifierSet(">=10.0.0,<11.0.0"), "foo.bar": SpecifierSet(">=1.0.0")}
    out = check.problems(req, {"amazon.aws": "11.0.1"})
    assert out == ["amazon.aws: 11.0.1 installed, need <11.0.0,>=10.0.0", "foo.bar: not installed (need >=1.0.0)"]


def test_requirements_file_has_ranges_for_every_entry():
    data = yaml.safe_load(REQUIREMENTS.read_text(encoding="utf-8"))
    for entry in data["collections"]:
        assert ">=" in entry["version"] and "<" in entry["version"], entry
