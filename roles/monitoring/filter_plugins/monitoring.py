"""Filters of the monitoring role (plain Python, unit-testable).

monitoring_input_errors(inputs)
    Every check argument specs cannot express; a list of messages, each starting with the
    name of the offending variable (empty when valid). ``inputs`` holds the role's
    variables without the ``monitoring_`` prefix, and ``sink_types``: the sink types
    alertd knows (vars/main.yml's __monitoring_sink_types).

None of these checks is one that every role shares (an address, a network, a port, a DNS
name, an endpoint URL): the webhook URL, the SNS topic ARN and the audit keys have formats
of their own, so this plugin loads no shared code.
"""
from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping, Sized
from pathlib import Path

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[3] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

PREFIX = "monitoring_"
# http(s)://host[:port][/path]: no user info, no whitespace.
WEBHOOK_URL = re.compile(r"^https?://[^/\s:@]+(:[0-9]{1,5})?(/\S*)?$")
SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]+$")
AUDIT_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
NETFILTER_SEVERITIES = ["info", "warning", "critical"]
UPGRADE_MAX_AGE_HOURS = 8760
MISSING = object()


def _text(value) -> str:
    """The text Ansible's match test reads a value as."""
    return value if isinstance(value, str) else str(value)


def _number(value):
    """The value when Jinja compares it with a number (an int, a float; a bool is an int);
    None for anything else (a string, None), which Jinja cannot compare with one."""
    return value if isinstance(value, (int, float)) else None


def _shown(value) -> str:
    return "(missing)" if value is MISSING else str(value)


def _sink_errors(inputs, errors) -> None:
    sinks = inputs.get("sinks")
    if not isinstance(sinks, list):
        errors.append(f"{PREFIX}sinks must be a list of sinks, each a mapping with a type")
        return
    if not sinks:
        errors.append(f"{PREFIX}sinks is empty: alerts need at least one sink (a log sink at least)")
    known = list(inputs.get("sink_types") or [])
    for i, sink in enumerate(sinks):
        where = f"{PREFIX}sinks[{i}]"
        kind = sink.get("type", MISSING) if isinstance(sink, Mapping) else MISSING
        if kind is MISSING or kind not in known:
            errors.append(f"{where}.type: unknown sink type {_shown(kind)} (known: {', '.join(map(str, known))})")
            continue
        if kind == "webhook":
            url = sink.get("url", MISSING)
            if not isinstance(url, str) or not WEBHOOK_URL.match(url):
                errors.append(f"{where}.url: malformed webhook URL {_shown(url)} (need http(s)://host[:port]/path)")
        elif kind == "email":
            for field in ("host", "from"):
                if field not in sink:
                    errors.append(f"{where}.{field}: missing: an email sink needs host, from and a non-empty to list")
            to = sink.get("to", [])
            if not isinstance(to, Sized) or len(to) == 0:
                errors.append(f"{where}.to: an email sink needs host, from and a non-empty to list (got {to!r})")
        elif kind == "sns":
            arn = sink.get("topic_arn", "")
            if not SNS_TOPIC_ARN.match(_text(arn)):
                errors.append(f"{where}.topic_arn: an sns sink needs a topic_arn like arn:aws:sns:REGION:ACCOUNT:NAME (got {arn!r})")


def _numeric_errors(inputs, errors) -> None:
    """The numbers alertd reads: seconds, counts and days, each within its bounds."""
    rules = [
        ("dedup_window", lambda v: v >= 0, "must be a number >= 0 (seconds a repeated alert is held back)"),
        ("poll_interval", lambda v: 0 < v <= 10, "must be a number of seconds above 0 and at most 10"),
        ("auth_burst_threshold", lambda v: v >= 1, "must be a number >= 1 (failed logins)"),
        ("auth_burst_window", lambda v: v >= 1, "must be a number >= 1 (seconds)"),
        ("service_failure_interval", lambda v: v >= 1, "must be a number >= 1 (seconds)"),
        ("maintenance_window_interval", lambda v: v >= 1, "must be a number >= 1 (seconds)"),
    ]
    for name, ok, rule in rules:
        value = inputs.get(name)
        number = _number(value)
        if number is None or not ok(number):
            errors.append(f"{PREFIX}{name} {rule} (got {value!r})")
    critical, warning = inputs.get("cert_critical_days"), inputs.get("cert_warning_days")
    for name, value in (("cert_critical_days", critical), ("cert_warning_days", warning)):
        if _number(value) is None:
            errors.append(f"{PREFIX}{name} must be a number of days (got {value!r})")
    if _number(critical) is not None and _number(warning) is not None and not critical <= warning:
        errors.append(f"{PREFIX}cert_critical_days ({critical}) must not exceed {PREFIX}cert_warning_days ({warning}): "
                      "a certificate turns critical after it turned warning")
    keys = inputs.get("audit_keys")
    if not isinstance(keys, Sized):
        errors.append(f"{PREFIX}audit_keys must be a list of audit keys (got {keys!r})")
    elif inputs.get("audit_enabled") and len(keys) == 0:
        errors.append(f"{PREFIX}audit_keys is empty while {PREFIX}audit_enabled is true: list the audit keys to alert on "
                      f"(or set {PREFIX}audit_enabled: false)")


def _upgrade_age_errors(inputs, errors) -> None:
    value = inputs.get("health_upgrade_max_age_hours")
    if not re.match(r"^[0-9]+$", _text(value)) or checks.jinja_int(value) > UPGRADE_MAX_AGE_HOURS:
        errors.append(f"{PREFIX}health_upgrade_max_age_hours must be whole hours from 0 (row left out) to "
                      f"{UPGRADE_MAX_AGE_HOURS} (got {value}).")


def _netfilter_errors(inputs, errors) -> None:
    """The netfilter watcher's settings, when it runs."""
    if not inputs.get("netfilter_enabled"):
        return
    severity = inputs.get("netfilter_low_severity")
    if severity not in NETFILTER_SEVERITIES:
        errors.append(f"{PREFIX}netfilter_low_severity must be one of {', '.join(NETFILTER_SEVERITIES)} (got {severity})")
    lists = {}
    for name in ("netfilter_expected_keys", "netfilter_low_keys"):
        keys = inputs.get(name)
        if not isinstance(keys, list):
            errors.append(f"{PREFIX}{name} must be a list of audit keys (got {keys!r})")
            keys = []
        lists[name] = keys
        for i, key in enumerate(keys):
            if not AUDIT_KEY.match(_text(key)):
                errors.append(f"{PREFIX}{name}[{i}]: audit keys are letters, digits, _ and - (got {key})")
    shared = []
    for key in lists["netfilter_expected_keys"]:
        if key in lists["netfilter_low_keys"] and key not in shared:
            shared.append(key)
    for key in shared:
        errors.append(f"{PREFIX}netfilter_expected_keys and {PREFIX}netfilter_low_keys share {key}: "
                      "a key is either expected (no alert) or low (a lower-severity alert)")


def monitoring_input_errors(inputs):
    errors = []
    _sink_errors(inputs, errors)
    _numeric_errors(inputs, errors)
    _upgrade_age_errors(inputs, errors)
    _netfilter_errors(inputs, errors)
    return errors


class FilterModule:
    def filters(self):
        return {"monitoring_input_errors": monitoring_input_errors}
