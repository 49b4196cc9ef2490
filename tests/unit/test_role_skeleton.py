"""The one role skeleton of docs/contributing.md, checked on every role.

Each rule here was once broken by some role (OS values loaded three ways, input checks after
the first change, sub-tags on include_tasks reaching no task, apt without retries, Ubuntu
copies of Debian values); this keeps a new role, or an edit, from bringing one back.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent for p in (ROOT / "roles").glob("*/tasks/main.yml"))
OS_VARS = {"Debian.yml", "Ubuntu.yml", "RedHat.yml"}


def tasks(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text()) or []


def walk(items: list[dict]):
    """Every task, with those nested in block/rescue/always."""
    for task in items:
        yield task
        for key in ("block", "rescue", "always"):
            yield from walk(task.get(key) or [])


def module(task: dict) -> str:
    return next((k for k in task if k.startswith(("ansible.builtin.", "community.", "amazon."))), "")


def role_ids(roles):
    return [r.name for r in roles]


@pytest.mark.parametrize("role", ROLES, ids=role_ids(ROLES))
def test_main_imports_one_file_per_concern(role):
    """tasks/main.yml imports: tags on an include reach the include, not its tasks. A dynamic
    include (a condition that needs a runtime value) passes its tags on with `apply`."""
    for task in walk(tasks(role / "tasks" / "main.yml")):
        name = module(task)
        if name in ("ansible.builtin.include_tasks", "ansible.builtin.include_role"):
            assert (task[name].get("apply") or {}).get("tags"), (
                f"{role.name}/tasks/main.yml: '{task.get('name')}' uses {name} without apply.tags; import it")


@pytest.mark.parametrize("role", ROLES, ids=role_ids(ROLES))
def test_os_values_come_from_set_vars_first_then_the_checks(role):
    """OS values load in tasks/set_vars.yml only, imported first; the input checks
    (tasks/assert.yml) come next, before any concern; both run under every tag."""
    main = [t for t in tasks(role / "tasks" / "main.yml")]
    imports = [(t.get("ansible.builtin.import_tasks"), t.get("tags") or []) for t in main]
    has_os_vars = any((role / "vars" / f).exists() for f in OS_VARS)
    expected = (["set_vars.yml"] if has_os_vars else []) + (["assert.yml"] if (role / "tasks" / "assert.yml").exists() else [])
    assert [f for f, _ in imports[:len(expected)]] == expected, f"{role.name}: main.yml starts with {imports[:3]}"
    for file, tags in imports[:len(expected)]:
        assert "always" in tags, f"{role.name}: {file} is not tagged always"
    for path in (role / "tasks").glob("*.yml"):
        if path.name == "set_vars.yml":
            continue
        loads = [t.get("name") for t in walk(tasks(path)) if module(t) == "ansible.builtin.include_vars"]
        assert not loads, f"{role.name}/tasks/{path.name} loads variables ({loads}); that is set_vars.yml's job"
    if has_os_vars:
        text = (role / "tasks" / "set_vars.yml").read_text()
        assert re.search(r"ansible(_facts\.|_)distribution }}", text) and re.search(r"ansible(_facts\.|_)os_family }}", text), (
            f"{role.name}: set_vars.yml must look up <distribution>.yml, then <os_family>.yml")


@pytest.mark.parametrize("role", ROLES, ids=role_ids(ROLES))
def test_ubuntu_values_only_where_ubuntu_differs(role):
    debian, ubuntu = role / "vars" / "Debian.yml", role / "vars" / "Ubuntu.yml"
    if ubuntu.exists() and debian.exists():
        assert yaml.safe_load(ubuntu.read_text()) != yaml.safe_load(debian.read_text()), (
            f"{role.name}: vars/Ubuntu.yml repeats vars/Debian.yml (Ubuntu gets it through its OS family)")


@pytest.mark.parametrize("role", ROLES, ids=role_ids(ROLES))
def test_apt_retries_a_mirrors_hiccup(role):
    for path in sorted((role / "tasks").glob("*.yml")):
        for task in walk(tasks(path)):
            if module(task) != "ansible.builtin.apt":
                continue
            where = f"{role.name}/tasks/{path.name}: '{task.get('name')}'"
            assert int(task.get("retries", 0)) >= 3 and task.get("delay") and task.get("register"), where
            assert task.get("until") == f"{task['register']} is succeeded", where
