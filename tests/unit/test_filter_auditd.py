"""Unit tests of the auditd role's input check (auditd_input_errors), called directly: the
role's defaults give no message (the positive control), each bad value exactly one, naming
its variable. The inputs are built as tasks/assert.yml builds them, from defaults/main.yml
and vars/main.yml."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from helpers.filter_checks import assert_one_message_naming
from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]

ROLE = ROOT / "roles" / "auditd"
AUDITD = load_module(ROLE / "filter_plugins" / "auditd.py")
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
TEMPLATE = re.compile(r"^\{\{ (\w+) \}\}$")


def _value(expression):
    name = TEMPLATE.match(expression)[1]
    if name == "__auditd_arches":  # set_vars.yml's, from the CPU architecture when auditd_arches is empty
        return DEFAULTS["auditd_arches"] or ["b64", "b32"]
    if name == "__auditd_watch_groups":
        return [{**group, "paths": DEFAULTS[TEMPLATE.match(group["paths"])[1]]} for group in VARS[name]]
    return DEFAULTS[name] if name in DEFAULTS else VARS[name]


ASSERT = yaml.safe_load((ROLE / "tasks" / "assert.yml").read_text())
GOOD = {key: _value(expr) for key, expr in ASSERT[0]["vars"]["__auditd_inputs"].items()}


def with_paths(var, paths):
    return {"watch_groups": [{**g, "paths": paths} if g["var"] == var else g for g in GOOD["watch_groups"]]}


def errors(over):
    return AUDITD.auditd_input_errors({**GOOD, **over})


def test_assert_yml_runs_the_filter_once_with_every_input():
    (task,) = ASSERT
    assert task["ansible.builtin.assert"] == {"that": "__auditd_errors | length == 0",
                                              "fail_msg": "{{ __auditd_errors | join('; ') }}", "quiet": True}
    assert set(GOOD) >= {"allow_audit_loss", "actions_losing_audit", "arches", "watch_groups", "extra_rules"}


def test_each_watch_group_names_the_variable_its_paths_come_from():
    for group in VARS["__auditd_watch_groups"]:
        assert group["paths"] == "{{ " + group["var"] + " }}", group


@pytest.mark.parametrize("over", [
    {},
    {"allow_audit_loss": True, "disk_full_action": "ignore", "space_left_action": "suspend", "failure_mode": 0},
    {"allow_audit_loss": False, "max_log_file_action": "keep_logs", "num_logs": 1},
    {"failure_mode": 2},
    {"failure_mode": "1", "num_logs": "5", "space_left": "300", "admin_space_left": "250", "max_log_file": "8", "uid_min": "500"},
    {"extra_rules": ["-w /etc/x -p wa -k x", "-a always,exit -F arch=b64 -S mount -F key=mounts"]},
    {"extra_rules": ""},
    {"arches": ["b64"]},
    {"netfilter_daemon_binaries": [], "netfilter_binaries": ["/usr/sbin/nft"]},
    with_paths("auditd_nginx_paths", []),
    with_paths("auditd_nginx_paths", ["/etc/nginx", None]),
], ids=lambda o: ",".join(o) or "defaults")
def test_good_input_has_no_errors(over):
    assert errors(over) == []


BAD = [
    ({"max_log_file_action": "ignore"}, "auditd_max_log_file_action", "auditd_max_log_file_action=ignore stops or drops auditing"),
    ({"space_left_action": "suspend"}, "auditd_space_left_action", "auditd_space_left_action=suspend stops or drops auditing"),
    ({"admin_space_left_action": "SUSPEND"}, "auditd_admin_space_left_action", "auditd_admin_space_left_action=SUSPEND"),
    ({"disk_full_action": "ignore"}, "auditd_disk_full_action", "auditd_disk_full_action=ignore"),
    ({"disk_error_action": "suspend"}, "auditd_disk_error_action", "set auditd_allow_audit_loss=true to accept the loss"),
    ({"allow_audit_loss": "true"}, "auditd_allow_audit_loss", "'true' is not a boolean"),
    ({"failure_mode": 0}, "auditd_failure_mode", "must be 1 or 2 (0 needs auditd_allow_audit_loss)"),
    ({"failure_mode": 3}, "auditd_failure_mode", "got 3"),
    ({"failure_mode": True}, "auditd_failure_mode", "got True"),
    ({"admin_space_left": 200}, "auditd_admin_space_left", "auditd_admin_space_left (200) must be below auditd_space_left (200)"),
    ({"space_left": 50}, "auditd_admin_space_left", "must be below auditd_space_left (50)"),
    ({"space_left": "lots"}, "auditd_space_left", "'lots' is not a whole number"),
    ({"max_log_file": 0}, "auditd_max_log_file", "must be >= 1"),
    ({"num_logs": 1}, "auditd_num_logs", "must be >= 2 when rotating"),
    ({"num_logs": "many", "max_log_file_action": "keep_logs"}, "auditd_num_logs", "'many' is not a whole number"),
    ({"uid_min": 0}, "auditd_uid_min", "must be >= 1"),
    ({"extra_rules": ["-w /etc/x -p wa -k x", "-w /etc/y -p wa"]}, "auditd_extra_rules[1]", "needs a key (-k NAME or -F key=NAME)"),
    ({"extra_rules": ["-w /etc/y -p wa -kfoo"]}, "auditd_extra_rules[0]", "has no key"),
    ({"extra_rules": "-w /etc/x -p wa -k x"}, "auditd_extra_rules", "must be a list of rule lines"),
    ({"arches": ["b64", "x32"]}, "auditd_arches", "only b64/b32"),
    (with_paths("auditd_identity_paths", ["/etc/passwd", "etc/group"]), "auditd_identity_paths",
     "not absolute or containing spaces: ['etc/group']"),
    (with_paths("auditd_airlock_config_paths", ["/etc/air lock"]), "auditd_airlock_config_paths", "not absolute or containing spaces"),
    (with_paths("auditd_docker_binaries", "usr/bin/docker"), "auditd_docker_binaries", "not absolute"),
    ({"netfilter_refresh_exe": "egress-nft"}, "auditd_netfilter_refresh_exe",
     "auditd_netfilter_refresh_exe: every entry must be an absolute file path"),
    ({"netfilter_refresh_exe": "/usr/local/lib/airlock/"}, "auditd_netfilter_refresh_exe", "without spaces"),
    ({"netfilter_daemon_binaries": ["/usr/sbin/xtables nft"]}, "auditd_netfilter_daemon_binaries",
     "auditd_netfilter_daemon_binaries: every entry must be an absolute file path"),
    ({"netfilter_binaries": "/usr/sbin/nft"}, "auditd_netfilter_binaries", "not a list"),
]


@pytest.mark.parametrize("over,var,fragment", BAD, ids=[f"{i}-{case[1]}" for i, case in enumerate(BAD)])
def test_each_bad_value_gets_one_message_naming_its_variable(over, var, fragment):
    found = errors(over)
    assert_one_message_naming(found, var, fragment)


def test_every_problem_is_reported_not_only_the_first():
    found = errors({"disk_full_action": "ignore", "failure_mode": 0, "uid_min": 0, "netfilter_binaries": ["nft"],
                    **with_paths("auditd_time_paths", ["etc/localtime"])})
    assert [e.split("=")[0].split(" ")[0].rstrip(":") for e in found] == [
        "auditd_disk_full_action", "auditd_failure_mode", "auditd_uid_min", "auditd_time_paths", "auditd_netfilter_binaries"]
