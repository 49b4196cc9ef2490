#!/usr/bin/env python3
"""Check that the installed Ansible collections satisfy collections/requirements.yml.

Exit 0 when every required collection is installed in a version inside its range,
1 otherwise (printing what is missing or out of range). Used by tools/setup.sh to
decide whether Ansible Galaxy must be contacted at all, and by the unit tests.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def required(path: Path) -> dict[str, SpecifierSet]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = {}
    for entry in data["collections"]:
        name = entry["name"] if isinstance(entry, dict) else entry
        spec = entry.get("version", "*") if isinstance(entry, dict) else "*"
        out[name] = SpecifierSet("" if spec in ("*", "") else spec)
    return out


def installed() -> dict[str, str]:
    """Collection name -> version, as ansible-galaxy sees it from this project (first one wins)."""
    galaxy = Path(sys.executable).with_name("ansible-galaxy")
    res = subprocess.run(
        [str(galaxy), "collection", "list", "--format", "json"],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
    )
    found: dict[str, str] = {}
    for _path, collections in json.loads(res.stdout).items():
        for name, meta in collections.items():
            found.setdefault(name, meta["version"])
    return found


def problems(req: dict[str, SpecifierSet], have: dict[str, str]) -> list[str]:
    out = []
    for name, spec in sorted(req.items()):
        if name not in have:
            out.append(f"{name}: not installed (need {spec or 'any'})")
        elif Version(have[name]) not in spec:
            out.append(f"{name}: {have[name]} installed, need {spec}")
    return out


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else ROOT / "collections" / "requirements.yml"
    issues = problems(required(path), installed())
    for line in issues:
        print(line, file=sys.stderr)
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
