"""Every sub-tag a role's tasks/main.yml puts on a task file selects that file's tasks.

`--tags auditd_rules` must run the audit rules, not an include and none of its tasks (tags
on include_tasks apply to the include only; import_tasks passes them on). For each role,
each sub-tag of main.yml is listed with `ansible-playbook --list-tasks --tags <tag>`, and
at least one task of the file it names must be in the list.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/tasks/main.yml"))


def sub_tagged_files(role: str) -> list[tuple[str, str]]:
    """(tag, task file) for each entry of main.yml that names a task file and carries a tag
    other than the role's own and `always`."""
    found = []
    for entry in yaml.safe_load((ROOT / "roles" / role / "tasks" / "main.yml").read_text()) or []:
        target = next((entry[k] for k in ("ansible.builtin.import_tasks", "ansible.builtin.include_tasks",
                                          "import_tasks", "include_tasks") if k in entry), None)
        if not target:
            continue
        for tag in entry.get("tags", []):
            if tag not in (role, "always"):
                found.append((tag, target))
    return found


CASES = [(role, tag, target) for role in ROLES for tag, target in sub_tagged_files(role)]


def task_names(role: str, target: str) -> list[str]:
    tasks = yaml.safe_load((ROOT / "roles" / role / "tasks" / target).read_text()) or []
    return [t["name"] for t in tasks if isinstance(t, dict) and t.get("name")]


def test_there_are_sub_tags_to_check():
    assert {role for role, _, _ in CASES} >= {"auditd", "monitoring"}, CASES


@pytest.mark.parametrize("role,tag,target", CASES, ids=[f"{r}:{t}" for r, t, _ in CASES])
def test_a_sub_tag_selects_the_tasks_of_its_file(tmp_path, role, tag, target):
    playbook = tmp_path / "pb.yml"
    playbook.write_text(f"- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: {role}\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
               ANSIBLE_NOCOLOR="1")
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "--list-tasks",
                          "--tags", tag, str(playbook)], capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    names = task_names(role, target)
    assert names, f"{target} has no named tasks"
    assert any(f"{role} : {name}" in out.stdout for name in names), \
        f"--tags {tag} lists none of the tasks of {target}:\n{out.stdout}"
