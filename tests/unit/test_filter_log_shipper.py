"""Unit tests of the log_shipper role's filters (input checks, the agent's configuration) and
of the inventory's stream mapping (airlock_evidence_shipper_streams)."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]

LS = load_module(ROOT / "roles/log_shipper/filter_plugins/log_shipper.py")
EV = load_module(ROOT / "filter_plugins/airlock_evidence.py")

SHA = "05baeadca96c4bb8e43906ed09cf0bebd0f321ff6d41987bdc46ce681de0978d"
GOOD = {
    "enabled": True, "region": "us-east-1", "endpoint_url": "",
    "streams": [{"name": "audit", "file": "/var/log/audit/audit.log", "group": "/airlock/prod/proxy/audit"},
                {"name": "nginx-access", "file": "/var/log/nginx/airlock-access.log",
                 "group": "/airlock/prod/proxy/nginx-access"}],
    "stream_name": "{instance_id}", "mode": "ec2", "force_flush_interval": 5,
    "package_version": "1.300072.0b1766",
    "package_url": "https://amazoncloudwatch-agent.s3.amazonaws.com/ubuntu/amd64/1.300072.0b1766/amazon-cloudwatch-agent.deb",
    "package_sha256": SHA, "controller_cache_dir": "/srv/airlock/.cache/cloudwatch-agent",
}


def test_good_input_has_no_errors():
    assert LS.log_shipper_input_errors(GOOD) == []
    assert LS.log_shipper_input_errors({**GOOD, "endpoint_url": "http://10.213.14.50:5000", "mode": "onPremise",
                                        "force_flush_interval": "1", "stream_name": "host-{hostname}",
                                        "package_url": "file:///tmp/standin/amazon-cloudwatch-agent.deb",
                                        "package_version": "0.0.0+airlock.standin"}) == []


def test_off_checks_nothing():
    """The lab's values (empty region, no streams) are fine while the role is off, and only then."""
    off = {**GOOD, "enabled": False, "region": "", "streams": [], "package_sha256": ""}
    assert LS.log_shipper_input_errors(off) == []
    assert LS.log_shipper_input_errors({**off, "enabled": "false"}) == []
    assert LS.log_shipper_input_errors({**off, "enabled": True}) != []


@pytest.mark.parametrize("over,fragment", [
    ({"region": ""}, "log_shipper_region: '' is not an AWS region"),
    ({"region": "us-east"}, "log_shipper_region"),
    ({"endpoint_url": "logs.us-east-1.amazonaws.com"}, "log_shipper_endpoint_url"),
    ({"endpoint_url": "https://user:pw@logs.example.org"}, "log_shipper_endpoint_url"),
    ({"endpoint_url": "ftp://logs.example.org"}, "log_shipper_endpoint_url"),
    ({"streams": []}, "log_shipper_streams must list at least one"),
    ({"streams": "audit"}, "log_shipper_streams must list at least one"),
    ({"streams": ["audit"]}, "log_shipper_streams[0] is not a mapping"),
    ({"streams": [{"name": "audit", "file": "/a.log", "group": "/g", "retention": 1}]},
     "log_shipper_streams[0] has unknown keys ['retention']"),
    ({"streams": [{"name": "Audit Log", "file": "/a.log", "group": "/g"}]}, "log_shipper_streams[0].name"),
    ({"streams": [{"name": "audit", "file": "", "group": "/g"}]}, "log_shipper_streams[0].file: ''"),
    ({"streams": [{"name": "audit", "file": "var/log/a.log", "group": "/g"}]}, "log_shipper_streams[0].file"),
    ({"streams": [{"name": "audit", "file": "/var/log/../../etc/shadow", "group": "/g"}]}, "log_shipper_streams[0].file"),
    ({"streams": [{"name": "audit", "file": "/a.log", "group": "/g:x"}]}, "log_shipper_streams[0].group"),
    ({"streams": [{"name": "audit", "file": "/a.log", "group": "/g"}, {"name": "audit", "file": "/b.log", "group": "/h"}]},
     "log_shipper_streams[1].name: 'audit' is listed twice"),
    ({"streams": [{"name": "a", "file": "/a.log", "group": "/g"}, {"name": "b", "file": "/a.log", "group": "/h"}]},
     "log_shipper_streams[1].file: '/a.log' is shipped twice"),
    ({"stream_name": ""}, "log_shipper_stream_name"),
    ({"stream_name": "host:1"}, "log_shipper_stream_name"),
    ({"stream_name": "{instance}"}, "log_shipper_stream_name: '{instance}' has a placeholder"),
    ({"mode": "onprem"}, "log_shipper_mode"),
    ({"force_flush_interval": 0}, "log_shipper_force_flush_interval"),
    ({"force_flush_interval": True}, "log_shipper_force_flush_interval"),
    ({"package_version": "latest version"}, "log_shipper_package_version"),
    ({"package_url": "http://amazoncloudwatch-agent.s3.amazonaws.com/x/amazon-cloudwatch-agent.deb"},
     "log_shipper_package_url"),
    ({"package_url": "https://amazoncloudwatch-agent.s3.amazonaws.com/ubuntu/amd64/latest/amazon-cloudwatch-agent.rpm"},
     "does not name a .deb"),
    ({"package_url": "file://relative/agent.deb"}, "log_shipper_package_url"),
    ({"package_sha256": ""}, "log_shipper_package_sha256 is empty"),
    ({"package_sha256": SHA.upper()}, "log_shipper_package_sha256"),
    ({"package_sha256": SHA[:-1]}, "log_shipper_package_sha256"),
    ({"package_sha256": "sha256:" + SHA}, "log_shipper_package_sha256"),
    ({"controller_cache_dir": ".cache"}, "log_shipper_controller_cache_dir"),
])
def test_bad_input_is_refused_naming_the_variable(over, fragment):
    errors = LS.log_shipper_input_errors({**GOOD, **over})
    assert any(fragment in e for e in errors), errors
    assert all(e.startswith("log_shipper_") for e in errors), errors


def test_the_agent_configuration():
    config = LS.log_shipper_agent_config(GOOD)
    assert config["agent"] == {"region": "us-east-1", "run_as_user": "root"}
    assert config["logs"]["force_flush_interval"] == 5
    assert "endpoint_override" not in config["logs"], "AWS: the private DNS answers the region's name"
    assert config["logs"]["logs_collected"]["files"]["collect_list"] == [
        {"file_path": "/var/log/audit/audit.log", "log_group_name": "/airlock/prod/proxy/audit",
         "log_stream_name": "{instance_id}", "timezone": "UTC"},
        {"file_path": "/var/log/nginx/airlock-access.log", "log_group_name": "/airlock/prod/proxy/nginx-access",
         "log_stream_name": "{instance_id}", "timezone": "UTC"}]
    override = LS.log_shipper_agent_config({**GOOD, "endpoint_url": "http://10.0.0.5:5000", "force_flush_interval": "1"})
    assert override["logs"]["endpoint_override"] == "http://10.0.0.5:5000"
    assert override["logs"]["force_flush_interval"] == 1


def test_the_mapping_reads_each_stream_from_its_file():
    groups = {"audit": "/airlock/prod/openhands/audit", "llm-gateway": "/airlock/prod/openhands/llm-gateway",
              "new-stream": "/airlock/prod/openhands/new-stream"}
    files = {"audit": "/var/log/audit/audit.log", "llm-gateway": "/var/log/airlock-llm-gateway/requests.jsonl"}
    streams = EV.airlock_evidence_shipper_streams(groups, files)
    assert streams == [
        {"name": "audit", "file": "/var/log/audit/audit.log", "group": "/airlock/prod/openhands/audit"},
        {"name": "llm-gateway", "file": "/var/log/airlock-llm-gateway/requests.jsonl",
         "group": "/airlock/prod/openhands/llm-gateway"},
        {"name": "new-stream", "file": "", "group": "/airlock/prod/openhands/new-stream"}]
    # A stream without a known file is refused by the role, naming it.
    errors = LS.log_shipper_input_errors({**GOOD, "streams": streams})
    assert errors == ["log_shipper_streams[2].file: '' is not an absolute path without spaces or '..'"], errors
    assert EV.airlock_evidence_shipper_streams({}, files) == []
