"""Unit tests of the monitoring role's input checks (monitoring_input_errors): the role's
defaults and other good inputs give no message, each bad input exactly one, starting with
the variable at fault."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]

MONITORING = load_module(ROOT / "roles/monitoring/filter_plugins/monitoring.py")
DEFAULTS = yaml.safe_load((ROOT / "roles/monitoring/defaults/main.yml").read_text())
SINK_TYPES = yaml.safe_load((ROOT / "roles/monitoring/vars/main.yml").read_text())["__monitoring_sink_types"]
INPUT_NAMES = ("sinks", "dedup_window", "poll_interval", "auth_burst_threshold", "auth_burst_window",
               "service_failure_interval", "maintenance_window_interval", "cert_critical_days", "cert_warning_days",
               "audit_enabled", "audit_keys", "health_upgrade_max_age_hours", "netfilter_enabled",
               "netfilter_low_severity", "netfilter_expected_keys", "netfilter_low_keys")
# The inputs tasks/assert.yml builds, from the role's defaults.
GOOD = {"sink_types": SINK_TYPES, **{name: DEFAULTS[f"monitoring_{name}"] for name in INPUT_NAMES}}
LOG = {"type": "log", "path": "/var/log/airlock/alerts.jsonl"}
EMAIL = {"type": "email", "host": "smtp.example.org", "from": "airlock@example.org", "to": ["ops@example.org"]}
SNS = {"type": "sns", "topic_arn": "arn:aws:sns:us-east-1:123456789012:airlock-alerts"}


def errors(**over):
    return MONITORING.monitoring_input_errors({**GOOD, **over})


def test_every_input_assert_yml_passes_is_checked_here():
    text = (ROOT / "roles/monitoring/tasks/assert.yml").read_text()
    assert all(f"{name}: \"{{{{ monitoring_{name} }}}}\"" in text for name in INPUT_NAMES)
    assert 'sink_types: "{{ __monitoring_sink_types }}"' in text


@pytest.mark.parametrize("over", [
    {},
    {"sinks": [LOG, {"type": "webhook", "url": "http://127.0.0.1:9099/hook", "token_env": "ALERTD_WEBHOOK_TOKEN"}]},
    {"sinks": [{"type": "webhook", "url": "https://hooks.example.com"}]},
    {"sinks": [{"type": "webhook", "url": "https://hooks.example.com:8443/services/T0/B0?x=1"}]},
    {"sinks": [EMAIL, SNS, {**SNS, "topic_arn": "arn:aws-us-gov:sns:us-gov-west-1:123456789012:alerts.fifo"}]},
    {"dedup_window": 0, "poll_interval": 10, "auth_burst_threshold": 1, "auth_burst_window": 1,
     "service_failure_interval": 1, "maintenance_window_interval": 1},
    {"poll_interval": 0.01, "dedup_window": 12.5},
    {"cert_critical_days": 21, "cert_warning_days": 21},
    {"audit_enabled": False, "audit_keys": []},
    {"health_upgrade_max_age_hours": 0},
    {"health_upgrade_max_age_hours": 8760},
    {"health_upgrade_max_age_hours": "48"},
    {"netfilter_low_severity": "critical", "netfilter_expected_keys": [], "netfilter_low_keys": ["a-b_C9"]},
    # The netfilter watcher's settings are checked only where it runs.
    {"netfilter_enabled": False, "netfilter_low_severity": "loud", "netfilter_low_keys": ["airlock_egress_refresh", "bad key"]},
])
def test_good_input_has_no_errors(over):
    assert errors(**over) == []


@pytest.mark.parametrize("over,prefix", [
    # Sinks
    ({"sinks": []}, "monitoring_sinks is empty"),
    ({"sinks": "log"}, "monitoring_sinks must be a list"),
    ({"sinks": [{"type": "pager", "path": "/x"}]}, "monitoring_sinks[0].type: unknown sink type pager (known: log, webhook, email, sns)"),
    ({"sinks": [{"path": "/x"}]}, "monitoring_sinks[0].type: unknown sink type (missing)"),
    ({"sinks": ["log"]}, "monitoring_sinks[0].type: unknown sink type (missing)"),
    ({"sinks": [LOG, {"type": "webhook", "url": "hooks.example.com/x"}]}, "monitoring_sinks[1].url: malformed webhook URL hooks.example.com/x"),
    ({"sinks": [{"type": "webhook", "url": "https://exa mple.com/"}]}, "monitoring_sinks[0].url: malformed webhook URL"),
    ({"sinks": [{"type": "webhook", "url": "https://user@hooks.example.com/"}]}, "monitoring_sinks[0].url: malformed webhook URL"),
    ({"sinks": [{"type": "webhook", "url": "ftp://hooks.example.com/"}]}, "monitoring_sinks[0].url: malformed webhook URL"),
    ({"sinks": [{"type": "webhook"}]}, "monitoring_sinks[0].url: malformed webhook URL (missing)"),
    ({"sinks": [{"type": "webhook", "url": 42}]}, "monitoring_sinks[0].url: malformed webhook URL 42"),
    ({"sinks": [{k: v for k, v in EMAIL.items() if k != "host"}]}, "monitoring_sinks[0].host: missing: an email sink needs host"),
    ({"sinks": [{k: v for k, v in EMAIL.items() if k != "from"}]}, "monitoring_sinks[0].from: missing: an email sink needs host"),
    ({"sinks": [{k: v for k, v in EMAIL.items() if k != "to"}]}, "monitoring_sinks[0].to: an email sink needs"),
    ({"sinks": [{**EMAIL, "to": []}]}, "monitoring_sinks[0].to: an email sink needs"),
    ({"sinks": [{**EMAIL, "to": None}]}, "monitoring_sinks[0].to: an email sink needs"),
    ({"sinks": [{"type": "sns"}]}, "monitoring_sinks[0].topic_arn: an sns sink needs a topic_arn like arn:aws:sns:REGION:ACCOUNT:NAME"),
    ({"sinks": [{**SNS, "topic_arn": "arn:aws:sns:us-east-1:1234:alerts"}]}, "monitoring_sinks[0].topic_arn: an sns sink needs"),
    # Numbers
    ({"dedup_window": -1}, "monitoring_dedup_window must be a number >= 0"),
    ({"dedup_window": "300"}, "monitoring_dedup_window must be a number >= 0"),
    ({"dedup_window": None}, "monitoring_dedup_window must be a number >= 0"),
    ({"poll_interval": 0}, "monitoring_poll_interval must be a number of seconds above 0 and at most 10"),
    ({"poll_interval": 10.5}, "monitoring_poll_interval must be"),
    ({"poll_interval": "0.5"}, "monitoring_poll_interval must be"),
    ({"auth_burst_threshold": 0}, "monitoring_auth_burst_threshold must be a number >= 1"),
    ({"auth_burst_window": 0}, "monitoring_auth_burst_window must be a number >= 1"),
    ({"service_failure_interval": 0}, "monitoring_service_failure_interval must be a number >= 1"),
    ({"maintenance_window_interval": 0.5}, "monitoring_maintenance_window_interval must be a number >= 1"),
    ({"cert_critical_days": 30}, "monitoring_cert_critical_days (30) must not exceed monitoring_cert_warning_days (21)"),
    ({"cert_warning_days": "21"}, "monitoring_cert_warning_days must be a number of days"),
    ({"audit_keys": []}, "monitoring_audit_keys is empty while monitoring_audit_enabled is true"),
    ({"audit_keys": None, "audit_enabled": False}, "monitoring_audit_keys must be a list"),
    # The health report's unattended upgrades row
    ({"health_upgrade_max_age_hours": -1}, "monitoring_health_upgrade_max_age_hours must be whole hours from 0"),
    ({"health_upgrade_max_age_hours": 8761}, "monitoring_health_upgrade_max_age_hours must be whole hours"),
    ({"health_upgrade_max_age_hours": "48h"}, "monitoring_health_upgrade_max_age_hours must be whole hours"),
    ({"health_upgrade_max_age_hours": 1.5}, "monitoring_health_upgrade_max_age_hours must be whole hours"),
    ({"health_upgrade_max_age_hours": True}, "monitoring_health_upgrade_max_age_hours must be whole hours"),
    # The netfilter watcher
    ({"netfilter_low_severity": "loud"}, "monitoring_netfilter_low_severity must be one of info, warning, critical (got loud)"),
    ({"netfilter_low_keys": ["airlock_egress_refresh"]},
     "monitoring_netfilter_expected_keys and monitoring_netfilter_low_keys share airlock_egress_refresh"),
    ({"netfilter_expected_keys": ["bad key"]}, "monitoring_netfilter_expected_keys[0]: audit keys are letters, digits, _ and -"),
    ({"netfilter_low_keys": ["netfilter_daemon", "bad/key"]}, "monitoring_netfilter_low_keys[1]: audit keys are"),
    ({"netfilter_expected_keys": "airlock_egress_refresh"}, "monitoring_netfilter_expected_keys must be a list"),
])
def test_each_bad_input_gives_one_message_naming_its_variable(over, prefix):
    found = errors(**over)
    assert len(found) == 1, found
    assert found[0].startswith(prefix), found


def test_every_problem_is_reported():
    found = errors(sinks=[{"type": "pager"}, {"type": "webhook", "url": "x"}], dedup_window=-1,
                   health_upgrade_max_age_hours=9000, netfilter_low_severity="loud")
    assert [e.split(" ")[0].rstrip(":") for e in found] == [
        "monitoring_sinks[0].type", "monitoring_sinks[1].url", "monitoring_dedup_window",
        "monitoring_health_upgrade_max_age_hours", "monitoring_netfilter_low_severity"]
