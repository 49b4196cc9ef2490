"""Bad input is rejected before any API call, and the error names the variable.

Each case runs the real provisioning playbook against the moto server while moto
records every request it receives: the run must fail, its message must name the
variable, and the recording must stay empty (and no VPC may exist).
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def clean(moto):
    moto.reset()
    return moto


CASES = [
    ("subnet outside the VPC", {"aws_enclave_public_subnet_cidr": "10.1.0.0/24"},
     "aws_enclave_public_subnet_cidr: 10.1.0.0/24 is not inside aws_enclave_vpc_cidr"),
    ("overlapping subnets", {"aws_enclave_private_subnet_cidr": "10.0.0.128/25"},
     "aws_enclave_private_subnet_cidr: 10.0.0.128/25 overlaps aws_enclave_public_subnet_cidr"),
    ("empty authorized_cidrs", {"airlock_authorized_cidrs": []}, "aws_enclave_authorized_cidrs: is empty"),
    ("world SSH without opt-in", {"airlock_authorized_cidrs": ["0.0.0.0/0"]}, "aws_enclave_allow_ssh_from_anywhere"),
    ("malformed CIDR", {"airlock_aws_vpc_cidr": "10.0.0.0/33"}, "aws_enclave_vpc_cidr: '10.0.0.0/33'"),
    ("malformed endpoint host", {"airlock_llm_endpoints": [{"name": "x", "hosts": ["not a host"]}]},
     "aws_enclave_llm_endpoints[0].hosts"),
    ("malformed endpoint URL", {"aws_enclave_endpoint_url": "ftp://127.0.0.1:1"}, "aws_enclave_endpoint_url"),
    ("unknown instance type format", {"airlock_aws_server_instance_type": "t3large"},
     "aws_enclave_server_instance_type: 't3large'"),
    ("missing key material", {"airlock_aws_ssh_public_key": ""}, "aws_enclave_ssh_public_key: is empty"),
    ("Bedrock entry without models", {"airlock_llm_endpoints": [{"name": "b", "bedrock": True}]},
     "aws_enclave_bedrock_models: is empty, but aws_enclave_llm_endpoints has the Bedrock entry 'b'"),
    ("Bedrock model wildcard", {"airlock_llm_endpoints": [{"name": "b", "bedrock": True}],
                                "airlock_aws_bedrock_models": ["anthropic.*"]},
     "aws_enclave_bedrock_models[0]: 'anthropic.*' has a wildcard"),
    ("Bedrock models without an entry", {"airlock_aws_bedrock_models": ["amazon.nova-pro-v1:0"]},
     "aws_enclave_bedrock_models: is set, but aws_enclave_llm_endpoints has no Bedrock entry"),
    ("package relay on a privileged port", {"aws_enclave_package_relay_port": 443},
     "aws_enclave_package_relay_port: 443 is not a TCP port from 1024 to 65535"),
    ("no HTTP for the relay's mirrors", {"aws_enclave_proxy_patch_ports": [443]},
     "aws_enclave_proxy_patch_ports: [443] lacks 80"),
    ("log retention CloudWatch does not offer", {"airlock_aws_log_retention_days": 42},
     "aws_enclave_log_retention_days: 42 is not a CloudWatch Logs retention period"),
    ("log group prefix with a space", {"airlock_aws_log_group_prefix": "/air lock"},
     "aws_enclave_log_group_prefix: '/air lock' may hold only"),
    ("log group prefix reserved by AWS", {"airlock_aws_log_group_prefix": "/aws/airlock"},
     "aws_enclave_log_group_prefix: '/aws/airlock' starts with aws/"),
    ("log stream name", {"airlock_aws_log_streams": {"proxy": ["Audit Log"], "openhands": ["audit"]}},
     "aws_enclave_log_streams.proxy[0]: 'Audit Log'"),
    ("log streams of an unknown tier", {"airlock_aws_log_streams": {"bastion": ["audit"]}},
     "aws_enclave_log_streams: 'bastion' is not a tier"),
    ("KMS alias instead of a key ARN", {"aws_enclave_log_kms_key_id": "alias/logs"},
     "aws_enclave_log_kms_key_id: 'alias/logs' is not a KMS key ARN"),
    ("CloudTrail bucket name", {"airlock_aws_cloudtrail_enabled": True, "aws_enclave_cloudtrail_bucket": "Bad_Bucket"},
     "aws_enclave_cloudtrail_bucket: 'Bad_Bucket' is not an S3 bucket name"),
    ("ACME zone given by name, not id", {"airlock_aws_acme_route53_zone_id": "example.org"},
     "aws_enclave_acme_route53_zone_id: 'example.org' is not a Route 53 hosted zone id"),
    ("backup bucket name S3 refuses", {"airlock_aws_backup_s3_bucket": "Airlock_Backups"},
     "aws_enclave_backup_bucket (airlock_aws_backup_s3_bucket): 'Airlock_Backups' is not an S3 bucket name"),
    ("negative noncurrent-version days", {"airlock_aws_backup_s3_noncurrent_days": -7},
     "aws_enclave_backup_noncurrent_days (airlock_aws_backup_s3_noncurrent_days): -7 must be a whole number of days from 1 to 36500"),
    ("backup prefix with a leading slash", {"airlock_aws_backup_s3_prefix": "/airlock"},
     "aws_enclave_backup_prefix (airlock_aws_backup_s3_prefix): '/airlock' must be path elements"),
    ("CloudTrail without the evidence set", {"airlock_aws_cloudtrail_enabled": True,
                                             "airlock_aws_evidence_enabled": False},
     "aws_enclave_cloudtrail_enabled: is true, but aws_enclave_evidence_enabled is false"),
]


@pytest.mark.parametrize("bad,needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rejected_before_any_api_call(clean, playbook, bad, needle):
    clean.start_recording()
    run = playbook("aws_provision.yml", "gamma", bad)
    requests = clean.recorded_requests()
    assert run.rc != 0, run.output[-3000:]
    assert needle in run.output, run.output[-3000:]
    assert "Check the enclave inputs before any API call" in run.output
    assert requests == [], f"API calls were made: {[r.get('url') for r in requests]}"
    assert clean.client().describe_vpcs(Filters=[{"Name": "tag:environment", "Values": ["gamma"]}])["Vpcs"] == []


def test_world_ssh_with_opt_in_passes_validation(clean, playbook):
    """The opt-in is honoured; only the always-tagged validation and report run (no API call)."""
    clean.start_recording()
    run = playbook("aws_provision.yml", "gamma",
                   {"airlock_authorized_cidrs": ["0.0.0.0/0"], "aws_enclave_allow_ssh_from_anywhere": True},
                   args=("--tags", "always"))
    requests = clean.recorded_requests()
    assert run.rc == 0, run.output[-3000:]
    assert requests == []


def test_recording_sees_api_calls(clean, playbook):
    """The recorder works: a valid run with a task that calls the API is recorded."""
    clean.start_recording()
    clean.client().describe_vpcs()
    assert clean.recorded_requests(), "moto recorded nothing: the no-API-call checks would prove nothing"
