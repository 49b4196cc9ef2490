"""Unit tests of filter_plugins/airlock_evidence.py (names, policies, input checks) and of
the matching logic of roles/aws_enclave/library/aws_enclave_vpc_flow_log.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
ev = load_module(ROOT / "filter_plugins" / "airlock_evidence.py")
flow = load_module(ROOT / "roles" / "aws_enclave" / "library" / "aws_enclave_vpc_flow_log.py")

ACCOUNT = "123456789012"
STREAMS = {"proxy": ["audit", "nginx-access"], "openhands": ["audit", "egress-drops"]}
INPUTS = {
    "project": "airlock", "environment": "prod", "region": "eu-west-1", "evidence_enabled": True,
    "log_group_prefix": "", "log_streams": STREAMS, "log_retention_days": 365, "log_kms_key_id": "",
    "flow_logs_traffic_type": "ALL", "flow_logs_max_aggregation_interval": 600,
    "cloudtrail_enabled": False, "cloudtrail_bucket": "",
}


def errors(**changes):
    return ev.airlock_evidence_input_errors({**INPUTS, **changes})


def test_group_names_per_tier_and_flow_logs():
    groups = ev.airlock_evidence_log_groups(INPUTS)
    assert groups == {
        "proxy": {"audit": "/airlock/prod/proxy/audit", "nginx-access": "/airlock/prod/proxy/nginx-access"},
        "openhands": {"audit": "/airlock/prod/openhands/audit", "egress-drops": "/airlock/prod/openhands/egress-drops"},
        "flow_logs": "/airlock/prod/vpc-flow-logs",
    }
    assert len(ev.airlock_evidence_all_groups(groups)) == 5
    custom = ev.airlock_evidence_log_groups({**INPUTS, "log_group_prefix": "/corp/airlock"})
    assert custom["proxy"]["audit"] == "/corp/airlock/proxy/audit"


def test_arns_are_exact_and_refuse_wildcards_and_empty_lists():
    assert ev.airlock_log_group_arns(["/a/b"], "eu-west-1", ACCOUNT) == [
        f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/a/b:*"]
    assert ev.airlock_log_group_arns(["/a/b"], "cn-north-1", ACCOUNT)[0].startswith("arn:aws-cn:logs:")
    with pytest.raises(ValueError, match="wildcard"):
        ev.airlock_log_group_arns(["/a/*"], "eu-west-1", ACCOUNT)
    with pytest.raises(ValueError, match="at least one"):
        ev.airlock_log_group_arns([], "eu-west-1", ACCOUNT)
    with pytest.raises(ValueError, match="12 digits"):
        ev.airlock_log_group_arns(["/a/b"], "eu-west-1", "123")


def test_write_policy_and_endpoint_policy():
    arns = ev.airlock_log_group_arns(["/x/2", "/x/1"], "eu-west-1", ACCOUNT)
    (allow,) = ev.airlock_logs_write_policy(arns)["Statement"]
    assert allow["Action"] == ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    assert allow["Resource"] == sorted(arns)
    assert set(allow) == {"Sid", "Effect", "Action", "Resource"}
    (endpoint,) = ev.airlock_logs_endpoint_policy(arns, ACCOUNT)["Statement"]
    assert endpoint["Principal"] == "*" and endpoint["Resource"] == sorted(arns)
    assert endpoint["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}
    with pytest.raises(ValueError):
        ev.airlock_logs_write_policy([])


def test_flow_logs_trust_and_bucket_policy():
    (trust,) = ev.airlock_flow_logs_trust_policy(ACCOUNT)["Statement"]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    trail = f"arn:aws:cloudtrail:eu-west-1:{ACCOUNT}:trail/airlock-prod-trail"
    policy = ev.airlock_cloudtrail_bucket_policy("b-1", trail, ACCOUNT, "eu-west-1")
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["CloudTrailWrite"]["Resource"] == f"arn:aws:s3:::b-1/AWSLogs/{ACCOUNT}/*"
    assert by_sid["CloudTrailWrite"]["Condition"]["StringEquals"]["aws:SourceArn"] == trail
    assert by_sid["DenyInsecureTransport"]["Effect"] == "Deny"


def test_names():
    names = ev.airlock_evidence_names(INPUTS, ACCOUNT)
    assert names["roles"] == {"proxy": "airlock-prod-eu-west-1-proxy", "openhands": "airlock-prod-eu-west-1-server"}
    assert names["flow_logs_role"] == "airlock-prod-eu-west-1-flow-logs"
    assert names["bucket"] == f"airlock-prod-eu-west-1-{ACCOUNT}-trail"
    assert ev.airlock_evidence_names({**INPUTS, "cloudtrail_bucket": "mine"}, ACCOUNT)["bucket"] == "mine"


def test_interface_endpoints():
    assert ev.airlock_interface_endpoints([], False) == []
    assert ev.airlock_interface_endpoints([{"bedrock": True}, {"bedrock": True, "service": "bedrock-runtime"}], True) == [
        {"service": "bedrock-runtime", "sg": "endpoint", "kind": "bedrock"},
        {"service": "logs", "sg": "logs_endpoint", "kind": "logs"},
    ]


def test_valid_inputs_pass():
    assert errors() == []
    assert errors(evidence_enabled=False, log_retention_days=42) == [], "nothing is checked when it is off"
    assert errors(cloudtrail_enabled=True) == []
    assert errors(log_kms_key_id=f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/0123abcd-0123-4abc-8def-0123456789ab") == []


@pytest.mark.parametrize("changes,needle", [
    ({"log_retention_days": 42}, "aws_enclave_log_retention_days: 42 is not a CloudWatch Logs retention period"),
    ({"log_retention_days": "forever"}, "aws_enclave_log_retention_days: 'forever'"),
    ({"log_retention_days": True}, "aws_enclave_log_retention_days: True"),
    ({"log_kms_key_id": "alias/logs"}, "aws_enclave_log_kms_key_id: 'alias/logs' is not a KMS key ARN"),
    ({"log_kms_key_id": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0123abcd-0123-4abc-8def-0123456789ab"},
     "is not in aws_enclave_region"),
    ({"log_group_prefix": "/air lock"}, "aws_enclave_log_group_prefix: '/air lock' may hold only"),
    ({"log_group_prefix": "/aws/airlock"}, "starts with aws/"),
    ({"log_group_prefix": "/airlock/"}, "must not end with /"),
    ({"log_streams": ["audit"]}, "aws_enclave_log_streams: must be a mapping"),
    ({"log_streams": {"bastion": ["audit"]}}, "aws_enclave_log_streams: 'bastion' is not a tier"),
    ({"log_streams": {"proxy": ["Audit Log"]}}, "aws_enclave_log_streams.proxy[0]: 'Audit Log'"),
    ({"log_streams": {"proxy": ["audit", "audit"]}}, "names a stream twice"),
    ({"log_streams": {"proxy": [], "openhands": []}}, "names no stream for any tier"),
    ({"log_group_prefix": "/" + "a" * 520}, "longer than 512"),
    ({"flow_logs_traffic_type": "SOME"}, "aws_enclave_flow_logs_traffic_type: 'SOME'"),
    ({"flow_logs_max_aggregation_interval": 300}, "aws_enclave_flow_logs_max_aggregation_interval: 300"),
    ({"environment": "e" * 40}, "more than the IAM limit of 64"),
    ({"cloudtrail_enabled": True, "cloudtrail_bucket": "Bad_Bucket"}, "aws_enclave_cloudtrail_bucket: 'Bad_Bucket'"),
    ({"cloudtrail_enabled": True, "environment": "e" * 30}, "the default name"),
    ({"cloudtrail_enabled": True, "evidence_enabled": False}, "aws_enclave_evidence_enabled is false"),
])
def test_bad_input_names_the_variable(changes, needle):
    found = errors(**changes)
    assert any(needle in e for e in found), found


# --- the flow log module's matching ------------------------------------------------------------

PARAMS = {"log_group_name": "/airlock/prod/vpc-flow-logs", "traffic_type": "ALL",
          "deliver_logs_permission_arn": f"arn:aws:iam::{ACCOUNT}:role/airlock/r", "max_aggregation_interval": 600,
          "tags": {"project": "airlock", "environment": "prod", "Name": "airlock-prod-flow-logs"}}
FLOW_LOG = {"FlowLogId": "fl-1", "LogDestinationType": "cloud-watch-logs", "LogGroupName": PARAMS["log_group_name"],
            "TrafficType": "ALL", "DeliverLogsPermissionArn": PARAMS["deliver_logs_permission_arn"],
            "MaxAggregationInterval": 600,
            "Tags": [{"Key": k, "Value": v} for k, v in PARAMS["tags"].items()]}


def test_flow_log_match_and_every_difference():
    assert flow.matches(FLOW_LOG, PARAMS)
    for key, value in (("TrafficType", "REJECT"), ("LogGroupName", "/other"), ("MaxAggregationInterval", 60),
                       ("DeliverLogsPermissionArn", "arn:aws:iam::1:role/x"), ("LogDestinationType", "s3"),
                       ("Tags", [{"Key": "project", "Value": "airlock"}])):
        assert not flow.matches({**FLOW_LOG, key: value}, PARAMS), key


def test_flow_log_scope_is_project_and_environment():
    assert flow.same_scope(FLOW_LOG, {"project": "airlock", "environment": "prod"})
    assert not flow.same_scope(FLOW_LOG, {"project": "airlock", "environment": "dev"})
    assert not flow.same_scope({"FlowLogId": "fl-2"}, {"project": "airlock", "environment": "prod"})


def test_policies_serialise():
    json.dumps(ev.airlock_logs_endpoint_policy(ev.airlock_log_group_arns(["/a"], "eu-west-1", ACCOUNT), ACCOUNT))
