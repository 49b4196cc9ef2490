"""The one role skeleton of docs/contributing.md, checked on every role.

Each rule here was once broken by some role (OS values loaded three ways, then from the first
vars file found alone, input checks after the first change, sub-tags on include_tasks reaching
no task, apt without retries, Ubuntu copies of Debian values); this keeps a new role, or an
edit, from bringing one back.
"""
from __future__ import annotations

import json
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
    (tasks/assert.yml) come next, before any concern; both run under every tag of the role:
    tagged with the role's tag and each of its sub-tags (a drift fix of another role skips
    them), or `always` where main.yml has no tag of its own (aws_enclave, the tiers). Only a
    tier's gate may come before them: a `meta: end_host` for a run that configures nothing
    of the tier, which changes nothing either."""
    main = [t for t in tasks(role / "tasks" / "main.yml")]
    while main and module(main[0]) == "ansible.builtin.meta" and main[0]["ansible.builtin.meta"] == "end_host":
        main = main[1:]
    imports = [(t.get("ansible.builtin.import_tasks"), t.get("tags") or []) for t in main]
    has_os_vars = any((role / "vars" / f).exists() for f in OS_VARS)
    expected = (["set_vars.yml"] if has_os_vars else []) + (["assert.yml"] if (role / "tasks" / "assert.yml").exists() else [])
    assert [f for f, _ in imports[:len(expected)]] == expected, f"{role.name}: main.yml starts with {imports[:3]}"
    role_tags = {tag for t in main for tag in t.get("tags") or []} - {"always"}
    for file, tags in imports[:len(expected)]:
        assert "always" in tags or set(tags) >= role_tags, \
            f"{role.name}: {file} is tagged {tags}, not with every tag of main.yml ({sorted(role_tags)})"
    for path in (role / "tasks").glob("*.yml"):
        if path.name == "set_vars.yml":
            continue
        loads = [t.get("name") for t in walk(tasks(path)) if module(t) == "ansible.builtin.include_vars"]
        assert not loads, f"{role.name}/tasks/{path.name} loads variables ({loads}); that is set_vars.yml's job"


ROLES_WITH_OS_VARS = [r for r in ROLES if any((r / "vars" / f).exists() for f in OS_VARS)]


def when(task: dict) -> str:
    cond = task.get("when") or []
    return " and ".join(cond if isinstance(cond, list) else [cond])


@pytest.mark.parametrize("role", ROLES_WITH_OS_VARS, ids=role_ids(ROLES_WITH_OS_VARS))
def test_os_values_load_in_layers_family_then_distribution(role):
    """set_vars.yml gathers the minimal facts only when they are missing, then loads
    vars/<os_family>.yml and over it vars/<distribution>.yml, each only where it exists: a
    distribution's file sets only what differs, so loading the first file found instead
    would leave the distribution without the rest of its family's values."""
    steps = tasks(role / "tasks" / "set_vars.yml")
    where = f"{role.name}/tasks/set_vars.yml"
    gather = steps[0]
    assert module(gather) == "ansible.builtin.setup", f"{where} does not start by gathering the facts it needs"
    assert "ansible_facts.os_family is not defined" in when(gather), f"{where} gathers facts even when they are there"
    loads = [t for t in steps if module(t) == "ansible.builtin.include_vars"]
    assert len(loads) == 2, f"{where} loads {len(loads)} vars files; the OS family's, then the distribution's"
    for task, layer, other in zip(loads, ("os_family", "distribution"), ("distribution", "os_family")):
        text = json.dumps(task)
        assert f"ansible_facts.{layer} }}}}.yml" in text and f"ansible_facts.{other} }}}}.yml" not in text, (
            f"{where}: '{task.get('name')}' must load vars/<{layer}>.yml")
        assert "is file" in when(task), f"{where}: '{task.get('name')}' must load its file only where it exists"
        assert "first_found" not in text, f"{where}: '{task.get('name')}' loads the first file found, not a layer"


@pytest.mark.parametrize("role", ROLES, ids=role_ids(ROLES))
def test_ubuntu_values_only_where_ubuntu_differs(role):
    """vars/Ubuntu.yml sets only the values where Ubuntu differs from its OS family's file
    (loaded first); a role where it would set none has no vars/Ubuntu.yml."""
    debian, ubuntu = role / "vars" / "Debian.yml", role / "vars" / "Ubuntu.yml"
    if ubuntu.exists() and debian.exists():
        family, own = yaml.safe_load(debian.read_text()) or {}, yaml.safe_load(ubuntu.read_text()) or {}
        assert own, f"{role.name}: vars/Ubuntu.yml sets nothing; delete it"
        same = sorted(k for k, v in own.items() if k in family and family[k] == v)
        assert not same, f"{role.name}: vars/Ubuntu.yml repeats vars/Debian.yml's {same} (Ubuntu gets them through its OS family)"


@pytest.mark.parametrize("role", ROLES, ids=role_ids(ROLES))
def test_apt_retries_a_mirrors_hiccup(role):
    for path in sorted((role / "tasks").glob("*.yml")):
        for task in walk(tasks(path)):
            if module(task) != "ansible.builtin.apt":
                continue
            where = f"{role.name}/tasks/{path.name}: '{task.get('name')}'"
            assert int(task.get("retries", 0)) >= 3 and task.get("delay") and task.get("register"), where
            assert task.get("until") == f"{task['register']} is succeeded", where


PLAYBOOKS = sorted([*(ROOT / "playbooks").glob("*.yml"), *(ROOT / "molecule").glob("*/*.yml"), ROOT / "site.yml"])


@pytest.mark.parametrize("path", PLAYBOOKS, ids=[str(p.relative_to(ROOT)) for p in PLAYBOOKS])
def test_apt_retries_in_playbooks_and_scenarios(path):
    """The lab's and the Molecule scenarios' own apt tasks retry as the roles' do: their
    containers converge side by side, and apt gives up at once on a lock another holds."""
    plays = yaml.safe_load(path.read_text()) or []
    if not isinstance(plays, list):
        return  # molecule.yml and other configuration, not a playbook
    for play in plays:
        if not isinstance(play, dict):
            continue
        for task in walk([*(play.get("pre_tasks") or []), *(play.get("tasks") or []), *(play.get("post_tasks") or [])]):
            if module(task) != "ansible.builtin.apt":
                continue
            where = f"{path.relative_to(ROOT)}: '{task.get('name')}'"
            assert int(task.get("retries", 0)) >= 3 and task.get("delay") and task.get("register"), where
            assert task.get("until") == f"{task['register']} is succeeded", where
