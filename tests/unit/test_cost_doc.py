"""docs/cost.md is what playbooks/cost.yml computes from today's variables and prices."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cost_doc_is_current(tmp_path):
    out = tmp_path / "cost.md"
    res = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "playbooks/cost.yml", "-e", f"cost_output={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert out.read_text() == (ROOT / "docs" / "cost.md").read_text(), \
        "docs/cost.md is stale: run `ansible-playbook playbooks/cost.yml` and commit the result"
