"""Evidence-off-the-box filters for airlock's AWS tier: CloudWatch Logs groups, the logs
interface endpoint's policy, the instance roles' log policies, the flow-log delivery role
and the optional CloudTrail trail and bucket.

Names are derived, never looked up, so the provisioning role, the teardown and the hosts'
shipper (inventories/aws/group_vars/all.yml) agree on them without an API call:

    {{ inputs | airlock_evidence_log_groups }}
      -> {"proxy": {"audit": "/airlock/prod/proxy/audit", ...},
          "openhands": {...}, "flow_logs": "/airlock/prod/vpc-flow-logs"}

Every policy names exact log-group ARNs (``arn:<partition>:logs:<region>:<account>:
log-group:<name>:*``); an empty list of groups is an error, never a wildcard. Unit tested in
tests/unit/test_filter_airlock_evidence.py; used by roles/aws_enclave (vars/main.yml,
tasks/evidence.yml, tasks/iam.yml, tasks/endpoints.yml) and checked against moto in
tests/aws/test_evidence.py.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[1] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

PREFIX = "aws_enclave_"
POLICY_VERSION = "2012-10-17"
TIERS = ("proxy", "openhands")
# What a host's shipper may do, and all it may do: create its stream, write, and find its
# stream's sequence state again after a restart.
LOG_WRITE_ACTIONS = ("logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents")
# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                  2557, 2922, 3288, 3653)
# Log group names: 1-512 of [A-Za-z0-9_./#-]; "aws/" at the start is reserved for AWS.
LOG_GROUP_CHARS = re.compile(r"^[A-Za-z0-9_./#-]+$")
LOG_GROUP_MAX = 512
STREAM_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
IAM_NAME = re.compile(r"^[A-Za-z0-9+=,.@_-]+$")
IAM_ROLE_NAME_MAX = 64
TRAFFIC_TYPES = ("ACCEPT", "REJECT", "ALL")
AGGREGATION_INTERVALS = (60, 600)
ACCOUNT_PLACEHOLDER = "000000000000"  # bucket name length check before the account is known


def _prefix(inputs):
    return inputs.get("log_group_prefix") or f"/{inputs.get('project')}/{inputs.get('environment')}"


def airlock_evidence_log_groups(inputs):
    """Log group names per tier and stream, and the VPC flow logs' group.

    ``inputs``: ``project``, ``environment``, ``log_group_prefix`` (empty: ``/<project>/<environment>``)
    and ``log_streams`` (``{tier: [stream, ...]}``). Names are ``<prefix>/<tier>/<stream>``.
    """
    prefix = _prefix(inputs).rstrip("/")
    streams = inputs.get("log_streams") or {}
    out = {tier: {s: f"{prefix}/{tier}/{s}" for s in streams.get(tier) or []} for tier in TIERS}
    out["flow_logs"] = f"{prefix}/vpc-flow-logs"
    return out


def airlock_evidence_all_groups(groups):
    """Every log group name of airlock_evidence_log_groups, sorted (flow logs included)."""
    names = [name for tier in TIERS for name in (groups.get(tier) or {}).values()]
    return sorted(set(names + [groups["flow_logs"]]))


def airlock_log_group_arns(names, region, account_id):
    """The ARNs a log policy names: one per group, covering its streams (``:*``)."""
    account_id = str(account_id)
    if not re.match(r"^[0-9]{12}$", account_id):
        raise ValueError(f"account id {account_id!r} is not 12 digits")
    if isinstance(names, str):
        names = [names]
    names = sorted(set(names or []))
    if not names:
        raise ValueError("no log group: a policy must name at least one group")
    for name in names:
        if "*" in name or "?" in name:
            raise ValueError(f"log group {name!r} has a wildcard")
    return [f"arn:{checks.aws_partition(region)}:logs:{region}:{account_id}:log-group:{name}:*" for name in names]


def _require(arns):
    arns = sorted(set(arns or []))
    if not arns:
        raise ValueError("no log group ARN: a policy must name at least one resource")
    return arns


def airlock_logs_write_policy(arns):
    """Inline policy of an instance role (or the flow-log delivery role): the three write
    actions on exactly these log groups, nothing else."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [{
            "Sid": "WriteEvidenceLogGroups",
            "Effect": "Allow",
            "Action": list(LOG_WRITE_ACTIONS),
            "Resource": _require(arns),
        }],
    }


def airlock_logs_endpoint_policy(arns, account_id):
    """Policy of the logs interface endpoint: the write actions on these groups, by
    principals of this account only (aws:PrincipalAccount)."""
    account_id = str(account_id)
    if not re.match(r"^[0-9]{12}$", account_id):
        raise ValueError(f"account id {account_id!r} is not 12 digits")
    return {
        "Version": POLICY_VERSION,
        "Statement": [{
            "Sid": "ThisAccountWriteEvidenceLogGroups",
            "Effect": "Allow",
            "Principal": "*",
            "Action": list(LOG_WRITE_ACTIONS),
            "Resource": _require(arns),
            "Condition": {"StringEquals": {"aws:PrincipalAccount": account_id}},
        }],
    }


def airlock_flow_logs_trust_policy(account_id):
    """Trust policy of the flow-log delivery role: the VPC Flow Logs service, on behalf of
    this account only (aws:SourceAccount, against the confused deputy)."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [{
            "Sid": "VpcFlowLogsAssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": str(account_id)}},
        }],
    }


def airlock_evidence_names(inputs, account_id=ACCOUNT_PLACEHOLDER):
    """IAM names (roles, profiles, inline policy) and the CloudTrail trail and bucket.

    IAM is global to the account while an enclave lives in one region: the region is part
    of every IAM name (like the server's Bedrock role, whose name the server role keeps).
    """
    base = f"{inputs.get('project')}-{inputs.get('environment')}-{inputs.get('region')}"
    bucket = inputs.get("cloudtrail_bucket") or f"{base}-{account_id}-trail"
    return {
        "path": f"/{inputs.get('project')}/",
        "roles": {"proxy": f"{base}-proxy", "openhands": f"{base}-server"},
        "flow_logs_role": f"{base}-flow-logs",
        "policy": "evidence-logs",
        "flow_logs_policy": "flow-logs-delivery",
        "trail": f"{inputs.get('project')}-{inputs.get('environment')}-trail",
        "bucket": bucket,
    }


def airlock_cloudtrail_bucket_policy(bucket, trail_arn, account_id, region):
    """Bucket policy CloudTrail needs, for this one trail only (aws:SourceArn), and no
    request without TLS."""
    partition = checks.aws_partition(region)
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    service = {"Service": "cloudtrail.amazonaws.com"}
    source = {"aws:SourceArn": trail_arn}
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {"Sid": "CloudTrailAclCheck", "Effect": "Allow", "Principal": service, "Action": "s3:GetBucketAcl",
             "Resource": bucket_arn, "Condition": {"StringEquals": source}},
            {"Sid": "CloudTrailWrite", "Effect": "Allow", "Principal": service, "Action": "s3:PutObject",
             "Resource": f"{bucket_arn}/AWSLogs/{account_id}/*",
             "Condition": {"StringEquals": {**source, "s3:x-amz-acl": "bucket-owner-full-control"}}},
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [bucket_arn, f"{bucket_arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ],
    }


def airlock_evidence_input_errors(inputs):
    """Validate the evidence inputs; every message names its aws_enclave_* variable.

    Only when ``evidence_enabled`` (the CloudTrail inputs only when ``cloudtrail_enabled``).
    """
    p = PREFIX
    errors = []
    if not inputs.get("evidence_enabled"):
        if inputs.get("cloudtrail_enabled"):
            errors.append(f"{p}cloudtrail_enabled: is true, but {p}evidence_enabled is false; the trail is part "
                          "of the evidence set")
        return errors

    retention = inputs.get("log_retention_days")
    days = checks.strict_int(retention)
    if days not in RETENTION_DAYS or str(retention).strip() != str(days):
        errors.append(f"{p}log_retention_days: {retention!r} is not a CloudWatch Logs retention period "
                      f"({', '.join(map(str, RETENTION_DAYS))})")
    kms = inputs.get("log_kms_key_id") or ""
    if kms and not checks.KMS_KEY_ARN.match(str(kms)):
        errors.append(f"{p}log_kms_key_id: {kms!r} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>); "
                      "CloudWatch Logs takes the key's full ARN")
    elif kms and f":kms:{inputs.get('region')}:" not in kms:
        errors.append(f"{p}log_kms_key_id: {kms!r} is not in {p}region {inputs.get('region')!r}; "
                      "CloudWatch Logs needs a key of its own region")

    prefix = inputs.get("log_group_prefix") or ""
    if prefix:
        if not isinstance(prefix, str) or not LOG_GROUP_CHARS.match(prefix):
            errors.append(f"{p}log_group_prefix: {prefix!r} may hold only letters, digits and _ . / # -")
        elif prefix.lstrip("/").startswith("aws/"):
            errors.append(f"{p}log_group_prefix: {prefix!r} starts with aws/, which AWS reserves for its own groups")
        elif prefix.endswith("/") or "//" in prefix:
            errors.append(f"{p}log_group_prefix: {prefix!r} must not end with / or hold an empty path element")

    streams = inputs.get("log_streams")
    if not isinstance(streams, dict):
        errors.append(f"{p}log_streams: must be a mapping of tier (proxy, openhands) to a list of stream names")
        streams = {}
    for tier, names in streams.items():
        if tier not in TIERS:
            errors.append(f"{p}log_streams: {tier!r} is not a tier (proxy, openhands)")
            continue
        if not isinstance(names, list):
            errors.append(f"{p}log_streams.{tier}: must be a list of stream names")
            continue
        for index, name in enumerate(names):
            if not isinstance(name, str) or not STREAM_NAME.match(name):
                errors.append(f"{p}log_streams.{tier}[{index}]: {name!r} must be 1-32 characters of [a-z0-9-]")
        if len(set(names)) != len(names):
            errors.append(f"{p}log_streams.{tier}: {names!r} names a stream twice")
    if not errors and not any(streams.get(t) for t in TIERS):
        errors.append(f"{p}log_streams: names no stream for any tier; set {p}evidence_enabled: false instead")
    if not errors:
        for name in airlock_evidence_all_groups(airlock_evidence_log_groups(inputs)):
            if len(name) > LOG_GROUP_MAX:
                errors.append(f"{p}log_group_prefix: the log group {name[:60]!r}... is longer than {LOG_GROUP_MAX}")
                break

    if inputs.get("flow_logs_traffic_type") not in TRAFFIC_TYPES:
        errors.append(f"{p}flow_logs_traffic_type: {inputs.get('flow_logs_traffic_type')!r} is not one of "
                      f"{', '.join(TRAFFIC_TYPES)}")
    interval = inputs.get("flow_logs_max_aggregation_interval")
    if checks.strict_int(interval) not in AGGREGATION_INTERVALS:
        errors.append(f"{p}flow_logs_max_aggregation_interval: {interval!r} is not 60 or 600 (seconds)")

    project = inputs.get("project")
    if not isinstance(project, str) or not IAM_NAME.match(project):
        errors.append(f"{p}project: {project!r} must be letters, digits and +=,.@_- to name the IAM roles")
    names = airlock_evidence_names(inputs)
    longest = max([names["flow_logs_role"], *names["roles"].values()], key=len)
    if len(longest) > IAM_ROLE_NAME_MAX:
        errors.append(f"{p}project/{p}environment: the IAM role name {longest!r} is {len(longest)} characters, "
                      f"more than the IAM limit of {IAM_ROLE_NAME_MAX}; use a shorter name")

    if inputs.get("cloudtrail_enabled"):
        given = inputs.get("cloudtrail_bucket") or ""
        bucket = names["bucket"]
        if not BUCKET_NAME.match(bucket) or ".." in bucket or re.match(r"^\d+\.\d+\.\d+\.\d+$", bucket):
            if given:
                errors.append(f"{p}cloudtrail_bucket: {given!r} is not an S3 bucket name (3-63 of [a-z0-9.-])")
            else:
                errors.append(f"{p}cloudtrail_bucket: the default name {bucket!r} (project-environment-region-"
                              "account-trail) is not a valid S3 bucket name (over 63 characters?); set one")
    return errors


def airlock_interface_endpoints(bedrock_entries, evidence_enabled):
    """The interface endpoints of the enclave: one per Bedrock service (security group
    ``endpoint``), and CloudWatch Logs with evidence (security group ``logs_endpoint``).
    Each is ``{"service", "sg", "kind"}``; endpoints.yml creates them and sets their policy."""
    out = []
    for entry in bedrock_entries or []:
        service = entry.get("service", "bedrock-runtime")
        if service not in [e["service"] for e in out]:
            out.append({"service": service, "sg": "endpoint", "kind": "bedrock"})
    if evidence_enabled:
        out.append({"service": "logs", "sg": "logs_endpoint", "kind": "logs"})
    return out


def airlock_evidence_shipper_streams(groups, files):
    """The log shipper's streams of one tier: ``[{name, file, group}]``, one per stream of
    ``groups`` (``airlock_evidence_cloudwatch.log_groups[<tier>]``, ``{stream: group}``) in
    name order, reading ``files[stream]``. A stream ``files`` does not know gets an empty
    file, which the log_shipper role refuses naming it (map that stream's file in the
    inventory's log_shipper_streams)."""
    files = files or {}
    return [{"name": name, "file": files.get(name) or "", "group": group}
            for name, group in sorted((groups or {}).items())]


class FilterModule:
    """airlock evidence filters (see the module docstring)."""

    def filters(self):
        return {
            "airlock_evidence_log_groups": airlock_evidence_log_groups,
            "airlock_evidence_all_groups": airlock_evidence_all_groups,
            "airlock_evidence_shipper_streams": airlock_evidence_shipper_streams,
            "airlock_evidence_names": airlock_evidence_names,
            "airlock_interface_endpoints": airlock_interface_endpoints,
            "airlock_evidence_input_errors": airlock_evidence_input_errors,
            "airlock_log_group_arns": airlock_log_group_arns,
            "airlock_logs_write_policy": airlock_logs_write_policy,
            "airlock_logs_endpoint_policy": airlock_logs_endpoint_policy,
            "airlock_flow_logs_trust_policy": airlock_flow_logs_trust_policy,
            "airlock_cloudtrail_bucket_policy": airlock_cloudtrail_bucket_policy,
        }
