"""The tier roles (proxy_tier, server_tier) own the order of site.yml's roles.

- Each tier's list of roles (vars/main.yml: the preflight and the tag selection use it) is
  the list its tasks/main.yml imports, in the same order, and every role has its checks in
  the preflight, validated against its main entry point's argument specs.
- `--tags <role>` through site.yml selects that role's tasks and no other role's, its own
  checks included and other roles' checks left out (besides Ansible's argument spec
  validation and the tier's window tasks), also for a role's own sub-tag; the preflight
  checks the roles the run's tags select.
- The server tier's maintenance window opens for its own tags only: a run limited to the
  proxy tier's tags leaves the server's firewall alone.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
TIERS = {"proxy_tier": "proxy", "server_tier": "openhands"}


def tier_vars(tier: str) -> dict:
    return yaml.safe_load((ROOT / "roles" / tier / "vars" / "main.yml").read_text())


def tier_value(tmp_path: Path, tier: str, expression: str, tags: list[str]) -> str:
    """What `expression` (Jinja, over the tier's vars/main.yml) renders to in a run with these
    tags (`--tags`, none for a whole run), with the tier's role switches on."""
    playbook = tmp_path / "pb.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_vars": str(ROOT / "roles" / tier / "vars" / "main.yml"), "tags": ["always"]},
        {"ansible.builtin.debug": {"msg": f"value=<{{{{ {expression} }}}}>"}, "tags": ["always"],
         "vars": {"server_tier_dns_resolver": True, "proxy_tier_package_relay": True}}]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    args = ["--tags", ",".join(tags)] if tags else []
    out = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", *args, str(playbook)],
                         capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return re.search(r"value=<(.*?)>", out.stdout).group(1)


def imported_roles(tasks: list) -> list[str]:
    """Role names of the import_role tasks, in order, blocks included."""
    found = []
    for task in tasks:
        for key in ("block", "rescue", "always"):
            found += imported_roles(task.get(key, []))
        target = task.get("ansible.builtin.import_role")
        if target:
            found.append(target["name"])
    return found


@pytest.mark.parametrize("tier", TIERS)
def test_the_tier_lists_the_roles_it_imports_in_order(tier):
    tasks = yaml.safe_load((ROOT / "roles" / tier / "tasks" / "main.yml").read_text())
    roles = tier_vars(tier)[f"__{tier}_roles"]
    assert imported_roles(tasks) == roles
    checked = [c["role"] for c in tier_vars(tier)[f"__{tier}_checks"]]
    assert set(checked) == set(roles), f"roles without preflight checks: {set(roles) - set(checked)}"
    for check in tier_vars(tier)[f"__{tier}_checks"]:
        tasks = ROOT / "roles" / check["role"] / "tasks"
        assert (tasks / check["file"]).is_file() or (tasks / f"{check['file']}.yml").is_file(), check


@pytest.mark.parametrize("tier", TIERS)
def test_the_contract_names_the_tiers_roles_in_order(tier):
    """docs/contract.md's groups table lists each tier's roles as the tier runs them."""
    row = next(line for line in (ROOT / "docs" / "contract.md").read_text().splitlines()
               if line.startswith(f"| `{TIERS[tier]}`"))
    cell = row.split("|")[3]
    assert f"`{tier}`" in cell, row
    assert re.findall(r"`([a-z_0-9]+)`", cell.split(":", 1)[1]) == tier_vars(tier)[f"__{tier}_roles"], row


@pytest.mark.parametrize("tier", TIERS)
def test_the_preflight_validates_every_roles_argument_specs(tier):
    """Ansible validates a role's argument specs only for the entry point tasks_from names:
    each role's checks run as its entry point `assert`, whose options are main's (a YAML
    alias, not a copy), so the preflight refuses a type or a choice main's specs refuse."""
    checks = tier_vars(tier)[f"__{tier}_checks"]
    for role in tier_vars(tier)[f"__{tier}_roles"]:
        assert {"role": role, "file": "assert"} in checks, f"{role}: the preflight does not run its entry point assert"
        specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
        assert specs["assert"]["options"] is specs["main"]["options"], f"{role}: assert's options are not main's"


@pytest.mark.parametrize("tier", TIERS)
def test_the_tier_follows_the_role_skeleton(tier):
    for part in ("meta/argument_specs.yml", "meta/main.yml", "defaults/main.yml", "README.md"):
        assert (ROOT / "roles" / tier / part).is_file(), f"{tier} has no {part}"
    specs = yaml.safe_load((ROOT / "roles" / tier / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    defaults = yaml.safe_load((ROOT / "roles" / tier / "defaults" / "main.yml").read_text()) or {}
    assert set(defaults) == set(specs["main"]["options"] or {}), "defaults and argument specs disagree"
    assert {"main", "preflight"} <= set(specs)


def list_tasks(tag: str) -> list[tuple[str, str, set[str]]]:
    """(role, task, tags) of every task `site.yml --list-tasks --tags tag` lists (lab inventory)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    out = subprocess.run([ANSIBLE_PLAYBOOK, "--list-tasks", "--tags", tag, str(ROOT / "site.yml")],
                         capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = []
    for line in out.stdout.splitlines():
        m = re.match(r"^\s+(?:(\w+) : )?(.*?)\s+TAGS: \[(.*)\]$", line)
        if m:
            rows.append((m.group(1) or "", m.group(2), {t.strip() for t in m.group(3).split(",") if t.strip()}))
    return rows


@pytest.mark.parametrize("tag,role,tier", [("nginx_proxy", "nginx_proxy", "proxy_tier"),
                                           ("egress_firewall", "egress_firewall", "server_tier"),
                                           ("auditd_rules", "auditd", None)])
def test_a_role_tag_selects_that_role_alone(tag, role, tier):
    rows = list_tasks(tag)
    selected = [(r, t) for r, t, tags in rows if "always" not in tags]
    assert selected, f"--tags {tag} lists no task of {role}"
    assert {r for r, _ in selected} <= {role, ""}, f"--tags {tag} selects other roles: {selected}"
    # Nor do other roles' checks and OS values run: each role's own checks carry its tags,
    # not `always`. What stays is play- and tier-level (the preflight, the window) and the
    # argument spec validation Ansible itself adds to every imported role, tagged always.
    others = {r for r, t, _ in rows if not t.startswith("Validating arguments against arg spec")}
    assert others <= {role, "", "proxy_tier", "server_tier"}, \
        f"--tags {tag} runs other roles' tasks: {sorted(others - {role, '', 'proxy_tier', 'server_tier'})}"
    # The role's own OS values and checks are there, for its sub-tags too.
    names = {t for r, t, _ in rows if r == role}
    assert any(n.startswith(("Validate", "Check", "Refuse")) for n in names), f"--tags {tag}: no check of {role}: {names}"
    # Every task of the role's own files under that tag is there (not an include and none of its tasks).
    if tag == "auditd_rules":
        names = [t["name"] for t in yaml.safe_load((ROOT / "roles/auditd/tasks/rules.yml").read_text())]
        assert all(any(t == n for r, t in selected if r == role) for n in names), selected
    else:
        assert all(tier in tags for r, _, tags in rows if r == role), f"{role}'s tasks lack the tier tag {tier}"


def test_each_roles_checks_carry_the_role_tag_and_every_sub_tag():
    """A role's OS values and input checks (the tasks before any change) run for its tag and
    each of its sub-tags, and for no other role's tags: tagged with all of them, never `always`
    (which ran every role's checks in a drift fix of one role)."""
    for main in sorted(ROOT.glob("roles/*/tasks/main.yml")):
        role = main.parent.parent.name
        if role in ("aws_enclave", "proxy_tier", "server_tier"):
            continue
        entries = yaml.safe_load(main.read_text())
        own = {t for e in entries for t in e.get("tags", [])}
        assert "always" not in own, f"{role}: a task of main.yml is tagged always"
        first = [e for e in entries if e.get("ansible.builtin.import_tasks") in ("set_vars.yml", "assert.yml", "lockout.yml")]
        assert first, f"{role}: no set_vars/assert import"
        for entry in first:
            assert set(entry["tags"]) == own, f"{role}: {entry['name']} is tagged {entry['tags']}, not {sorted(own)}"


@pytest.mark.parametrize("tier,tags,checked", [
    ("proxy_tier", [], "all"), ("proxy_tier", ["airlock_preflight"], "all"), ("proxy_tier", ["proxy_tier"], "all"),
    ("proxy_tier", ["nginx_proxy"], ["nginx_proxy"]), ("proxy_tier", ["nginx_proxy_tls", "auditd_rules"], ["nginx_proxy", "auditd"]),
    ("proxy_tier", ["egress_firewall"], []), ("proxy_tier", ["server_tier"], []),
    ("server_tier", [], "all"), ("server_tier", ["server_tier"], "all"), ("server_tier", ["egress_firewall_ruleset"], ["egress_firewall"]),
    ("server_tier", ["nginx_proxy", "fail2ban"], []), ("server_tier", ["host_baseline"], ["host_baseline"]),
    ("server_tier", ["airlock_preflight", "nginx_proxy"], "all")])
def test_the_preflight_checks_the_roles_the_runs_tags_select(tmp_path, tier, tags, checked):
    """__<tier>_checked_roles, which the preflight's loop uses: every enabled role for a whole
    run, the tier's tag or the check alone; else the roles the tags name, by tag or sub-tag."""
    shown = [r for r in tier_value(tmp_path, tier, f"__{tier}_checked_roles | join(',')", tags).split(",") if r]
    expected = tier_vars(tier)[f"__{tier}_roles"] if checked == "all" else checked
    assert sorted(shown) == sorted(expected), shown


@pytest.mark.parametrize("tags,selected", [
    ([], True), (["egress_firewall"], True), (["auditd_rules"], True), (["server_tier"], True),
    (["openhands"], True), (["host_baseline"], True), (["nginx_proxy"], False), (["fail2ban"], False),
    (["nginx_proxy_tls"], False), (["proxy_tier"], False), (["airlock_preflight"], False),
    (["nginx_proxy", "llm_gateway"], True)])
def test_the_maintenance_window_opens_for_the_server_tier_tags_only(tmp_path, tags, selected):
    assert tier_value(tmp_path, "server_tier", "__server_tier_selected | bool", tags) == str(selected)


@pytest.mark.parametrize("tier,tags,selected", [
    ("proxy_tier", [], True), ("proxy_tier", ["proxy_tier"], True), ("proxy_tier", ["nginx_proxy"], True),
    ("proxy_tier", ["nginx_proxy_tls"], True), ("proxy_tier", ["package_relay"], True), ("proxy_tier", ["auditd_rules"], True),
    ("proxy_tier", ["egress_firewall"], False), ("proxy_tier", ["server_tier"], False), ("proxy_tier", ["llm_gateway"], False),
    ("proxy_tier", ["aws_network"], False), ("proxy_tier", ["egress_firewall", "fail2ban"], True),
    ("server_tier", ["nginx_proxy"], False), ("server_tier", ["openhands_images"], True),
    ("server_tier", ["monitoring"], True),
    # The input check alone configures no tier (site.yml's preflight plays ran it); with a
    # role's tag beside it, that role's tier is selected.
    ("proxy_tier", ["airlock_preflight"], False), ("server_tier", ["airlock_preflight"], False),
    ("proxy_tier", ["airlock_preflight", "nginx_proxy"], True), ("server_tier", ["airlock_preflight", "nginx_proxy"], False)])
def test_a_tier_is_selected_by_its_own_roles_tags(tmp_path, tier, tags, selected):
    """__<tier>_selected, which ends a tier's play at its first task when false: true for a
    whole run, the tier's tag, and any tag or sub-tag of one of its roles; false for the
    other tier's roles alone and for the input check alone (`--tags airlock_preflight`)."""
    assert tier_value(tmp_path, tier, f"__{tier}_selected | bool", tags) == str(selected)
