"""Evidence leaves the box: the log shipper, converged with the stand-in agent package, sends
each stream's new lines to its own CloudWatch Logs group (moto's server, the scenario's own
container) under the configured stream name, and nothing else.

The block (a file that is not configured reaches no group) is asserted beside its positive
control in the same test: lines appended at the same moment to the configured files arrive,
each in its group only.
"""
from __future__ import annotations

import time
import uuid

import boto3
import testinfra

ENDPOINT = "http://10.213.14.50:5000"
GROUPS = "/airlock/molecule/openhands"
STREAM = "molecule-shipper"
STREAMS = {
    "audit": "/var/log/audit/audit.log",
    "alerts": "/var/log/airlock/alerts.jsonl",
    "fail2ban": "/var/log/fail2ban.log",
    "egress-drops": "/var/log/ulog/airlock-egress-drops.log",
    "llm-gateway": "/var/log/airlock-llm-gateway/requests.jsonl",
}
NOT_SHIPPED = "/var/log/airlock-not-shipped.log"
CONFIG = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"

host = testinfra.get_host("docker://log_shipper-host")
logs = boto3.client("logs", region_name="us-east-1", endpoint_url=ENDPOINT,
                    aws_access_key_id="testing", aws_secret_access_key="testing")


def append(path: str, line: str) -> None:
    host.check_output(f"mkdir -p $(dirname {path}) && printf '%s\\n' '{line}' >> {path}")


def messages(group: str) -> list[str]:
    """Every event of every stream of the group (moto keeps them all)."""
    out = []
    for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]:
        events = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True)
        out += [e["message"] for e in events["events"]]
    return out


def stream_messages(group: str) -> list[str]:
    try:
        events = logs.get_log_events(logGroupName=group, logStreamName=STREAM, startFromHead=True)
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [e["message"] for e in events["events"]]


def test_each_stream_reaches_its_group_and_an_unlisted_file_reaches_none():
    run = uuid.uuid4().hex[:12]
    markers = {name: f"airlock-shipper-test {run} {name}" for name in STREAMS}
    unlisted = f"airlock-shipper-test {run} not-shipped"
    append(NOT_SHIPPED, unlisted)
    for name, path in STREAMS.items():
        append(path, markers[name])
    # Positive control: every configured file's line arrives in its group, under the stream name.
    deadline = time.monotonic() + 60
    missing = set(STREAMS)
    while missing and time.monotonic() < deadline:
        missing = {n for n in missing if markers[n] not in stream_messages(f"{GROUPS}/{n}")}
        if missing:
            time.sleep(1)
    assert not missing, f"no line reached {sorted(missing)} within 60 s; agent: " + \
        host.check_output("journalctl -u amazon-cloudwatch-agent --no-pager -n 30 || true")
    # The block: one more flush later, the unlisted file's line is in no group, and each
    # stream's line is in its own group only.
    time.sleep(3)
    groups = [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
    assert {f"{GROUPS}/{n}" for n in STREAMS} <= set(groups), groups
    for group in groups:
        found = messages(group)
        assert unlisted not in found, f"the unlisted file's line reached {group}"
        others = [m for n, m in markers.items() if f"{GROUPS}/{n}" != group]
        assert not [m for m in others if m in found], f"{group} holds another stream's line"


def test_the_configuration_is_root_only_and_names_the_groups():
    config = host.file(CONFIG)
    assert config.user == "root" and config.group == "root"
    assert config.mode == 0o600, oct(config.mode)
    text = config.content_string
    assert all(f'"{GROUPS}/{n}"' in text for n in STREAMS), text


def test_the_agent_is_enabled_and_running():
    service = host.service("amazon-cloudwatch-agent")
    assert service.is_enabled
    assert service.is_running
