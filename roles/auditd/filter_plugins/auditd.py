"""Filters of the auditd role (plain Python, unit-testable).

auditd_input_errors(inputs)
    Every check argument specs cannot express; a list of messages, each starting with the
    name of the offending variable (empty when valid). ``inputs`` holds the role's
    variables without the ``auditd_`` prefix, and the OS-dependent values the checks use:
    ``actions_losing_audit`` (__auditd_actions_losing_audit), ``arches`` (__auditd_arches:
    auditd_arches, or the CPU architecture's when that is empty) and ``watch_groups``
    (__auditd_watch_groups: ``[{"var", "key", "perm", "paths"}]``).

Numbers may arrive as strings of digits (``-e auditd_num_logs=5``): they count as the
number. auditd_allow_audit_loss accepts the loss only when it is the boolean true.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[3] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

PREFIX = "auditd_"
# The actions that may stop or drop auditing, each checked against __auditd_actions_losing_audit.
ACTIONS = ("max_log_file_action", "space_left_action", "admin_space_left_action", "disk_full_action", "disk_error_action")
# A rule line with a key: -k NAME or -F key=NAME.
RULE_KEY = re.compile(r"(^|\s)(-k\s+\S+|-F\s+key=\S+)")
# A watched path (file or directory): absolute, no whitespace.
WATCH_PATH = re.compile(r"^/[^\s]*$")
# An executable of the netfilter rules (exe= filter): an absolute file path, no whitespace.
EXE_PATH = re.compile(r"^/[^\s]*[^/\s]$")
ARCHES = ("b64", "b32")


def _flatten(values):
    """Ansible's flatten: nested lists opened, null entries skipped."""
    out = []
    for value in values:
        if value in (None, "None", "null"):
            continue
        if isinstance(value, (list, tuple)):
            out.extend(_flatten(value))
        else:
            out.append(value)
    return out


def _loss_errors(inputs, allow_loss, errors):
    if allow_loss:
        return
    losing = inputs.get("actions_losing_audit") or []
    for name in ACTIONS:
        value = inputs.get(name)
        if str(value).lower() in losing:
            errors.append(f"{PREFIX}{name}={value} stops or drops auditing without anyone noticing; choose "
                          f"syslog, rotate, single or halt, or set {PREFIX}allow_audit_loss=true to accept the loss")


def _number_errors(inputs, allow_loss, errors):
    mode = checks.strict_int(inputs.get("failure_mode"))
    if not (mode in (1, 2) or (mode == 0 and allow_loss)):
        errors.append(f"{PREFIX}failure_mode must be 1 or 2 (0 needs {PREFIX}allow_audit_loss); "
                      f"got {inputs.get('failure_mode')!r}")
    space, admin = checks.strict_int(inputs.get("space_left")), checks.strict_int(inputs.get("admin_space_left"))
    for name, value in (("space_left", space), ("admin_space_left", admin)):
        if value is None:
            errors.append(f"{PREFIX}{name}: {inputs.get(name)!r} is not a whole number of MB")
    if space is not None and admin is not None and not admin < space:
        errors.append(f"{PREFIX}admin_space_left ({admin}) must be below {PREFIX}space_left ({space})")
    size = checks.strict_int(inputs.get("max_log_file"))
    if size is None or size < 1:
        errors.append(f"{PREFIX}max_log_file must be >= 1 (MB); got {inputs.get('max_log_file')!r}")
    logs = checks.strict_int(inputs.get("num_logs"))
    if logs is None:
        errors.append(f"{PREFIX}num_logs: {inputs.get('num_logs')!r} is not a whole number")
    elif logs < 2 and str(inputs.get("max_log_file_action")).lower() == "rotate":
        errors.append(f"{PREFIX}num_logs must be >= 2 when rotating ({PREFIX}max_log_file_action rotate); got {logs}")
    uid = checks.strict_int(inputs.get("uid_min"))
    if uid is None or uid < 1:
        errors.append(f"{PREFIX}uid_min must be >= 1; got {inputs.get('uid_min')!r}")


def _rule_errors(inputs, errors):
    rules = checks.as_list(inputs.get("extra_rules"))
    if rules is None:
        errors.append(f"{PREFIX}extra_rules must be a list of rule lines, each with a key (-k NAME)")
        return
    for i, rule in enumerate(rules):
        if not RULE_KEY.search(str(rule)):
            errors.append(f"{PREFIX}extra_rules[{i}]: {rule!r} has no key: every {PREFIX}extra_rules line needs "
                          "a key (-k NAME or -F key=NAME)")
    arches = checks.as_list(inputs.get("arches"))
    if arches is None:
        errors.append(f"{PREFIX}arches must be a list of b64/b32; got {inputs.get('arches')!r}")
    elif any(arch not in ARCHES for arch in arches):
        errors.append(f"{PREFIX}arches: only b64/b32; got {[a for a in arches if a not in ARCHES]}")


def _path_errors(inputs, errors):
    for group in inputs.get("watch_groups") or []:
        name = group.get("var") or f"{PREFIX}*_paths/{PREFIX}*_binaries"
        paths = group.get("paths")
        if paths is None:
            continue
        bad = [p for p in _flatten(paths if isinstance(paths, (list, tuple)) else [paths]) if not WATCH_PATH.match(str(p))]
        if bad:
            errors.append(f"{name}: not absolute or containing spaces: {bad}")
    for name in ("netfilter_refresh_exe", "netfilter_daemon_binaries", "netfilter_binaries"):
        value = inputs.get(name)
        entries = [value] if name == "netfilter_refresh_exe" else checks.as_list(value)
        if entries is None:
            errors.append(f"{PREFIX}{name}: every entry must be an absolute file path without spaces "
                          f"(got {value!r}, not a list)")
            continue
        bad = [e for e in entries if not EXE_PATH.match(str(e))]
        if bad:
            errors.append(f"{PREFIX}{name}: every entry must be an absolute file path without spaces (got {bad})")


def auditd_input_errors(inputs):
    errors = []
    # Only a boolean true accepts the loss: any other value that is not false (the string
    # "true" too) is refused, as a condition with a non-boolean result is.
    value = inputs.get("allow_audit_loss")
    allow_loss = value is True
    if value and not isinstance(value, bool):
        errors.append(f"{PREFIX}allow_audit_loss: {value!r} is not a boolean: give true or false "
                      "(a YAML or JSON boolean, not a string)")
    _loss_errors(inputs, allow_loss, errors)
    _number_errors(inputs, allow_loss, errors)
    _rule_errors(inputs, errors)
    _path_errors(inputs, errors)
    return errors


class FilterModule:
    def filters(self):
        return {"auditd_input_errors": auditd_input_errors}
