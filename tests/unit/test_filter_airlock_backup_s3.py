"""Unit tests of filter_plugins/airlock_backup_s3.py: the backup bucket's name, its policy,
each tier's grant, the S3 gateway endpoint's policy and the input checks."""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
bk = load_module(ROOT / "filter_plugins" / "airlock_backup_s3.py")

ACCOUNT = "123456789012"
KEY = "arn:aws:kms:eu-west-1:123456789012:key/0123abcd-0123-4567-89ab-0123456789ab"
INPUTS = {
    "project": "airlock", "environment": "prod", "region": "eu-west-1", "backup_bucket_enabled": True,
    "backup_bucket": "", "backup_prefix": "airlock", "backup_noncurrent_days": 30, "backup_kms_key_id": "",
}


def with_(**changes):
    return {**INPUTS, **changes}


def test_default_name_and_prefixes_are_derived():
    assert bk.airlock_backup_bucket_name(INPUTS, ACCOUNT) == "airlock-prod-eu-west-1-123456789012-backup"
    assert bk.airlock_backup_bucket_name(with_(backup_bucket="my-backups"), ACCOUNT) == "my-backups"
    assert bk.airlock_backup_prefixes(INPUTS) == {"proxy": "airlock/proxy", "openhands": "airlock/openhands"}
    assert bk.airlock_backup_prefixes(with_(backup_prefix="org/airlock")) == {
        "proxy": "org/airlock/proxy", "openhands": "org/airlock/openhands"}


def test_valid_inputs_pass_and_a_disabled_bucket_is_not_checked():
    assert bk.airlock_backup_s3_input_errors(INPUTS) == []
    assert bk.airlock_backup_s3_input_errors(with_(backup_kms_key_id=KEY, backup_noncurrent_days="7")) == []
    assert bk.airlock_backup_s3_input_errors(with_(backup_bucket_enabled=False, backup_bucket="Bad_Name")) == []


@pytest.mark.parametrize("changes,needle", [
    ({"backup_bucket": "Airlock_Backups"}, "aws_enclave_backup_bucket (airlock_aws_backup_s3_bucket): 'Airlock_Backups' is not an S3 bucket name"),
    ({"backup_bucket": "ab"}, "aws_enclave_backup_bucket (airlock_aws_backup_s3_bucket): 'ab' is not"),
    ({"backup_bucket": "my.backups"}, "aws_enclave_backup_bucket (airlock_aws_backup_s3_bucket): 'my.backups' is not"),
    ({"backup_bucket": "xn--backups"}, "aws_enclave_backup_bucket (airlock_aws_backup_s3_bucket): 'xn--backups' is not"),
    ({"backup_bucket": "backups-s3alias"}, "aws_enclave_backup_bucket (airlock_aws_backup_s3_bucket): 'backups-s3alias' is not"),
    ({"backup_bucket": "-backups"}, "aws_enclave_backup_bucket (airlock_aws_backup_s3_bucket): '-backups' is not"),
    ({"environment": "a-very-long-environment-name-here"}, "aws_enclave_backup_bucket (airlock_aws_backup_s3_bucket): the default name"),
    ({"backup_prefix": "/airlock"}, "aws_enclave_backup_prefix (airlock_aws_backup_s3_prefix): '/airlock'"),
    ({"backup_prefix": "airlock/"}, "aws_enclave_backup_prefix (airlock_aws_backup_s3_prefix): 'airlock/'"),
    ({"backup_prefix": "air//lock"}, "aws_enclave_backup_prefix (airlock_aws_backup_s3_prefix): 'air//lock'"),
    ({"backup_prefix": ""}, "aws_enclave_backup_prefix (airlock_aws_backup_s3_prefix): ''"),
    ({"backup_prefix": "air lock"}, "aws_enclave_backup_prefix (airlock_aws_backup_s3_prefix): 'air lock'"),
    ({"backup_noncurrent_days": -7}, "aws_enclave_backup_noncurrent_days (airlock_aws_backup_s3_noncurrent_days): -7"),
    ({"backup_noncurrent_days": 0}, "aws_enclave_backup_noncurrent_days (airlock_aws_backup_s3_noncurrent_days): 0"),
    ({"backup_noncurrent_days": "thirty"}, "aws_enclave_backup_noncurrent_days (airlock_aws_backup_s3_noncurrent_days): 'thirty'"),
    ({"backup_noncurrent_days": True}, "aws_enclave_backup_noncurrent_days (airlock_aws_backup_s3_noncurrent_days): True"),
    ({"backup_noncurrent_days": 7.5}, "aws_enclave_backup_noncurrent_days (airlock_aws_backup_s3_noncurrent_days): 7.5"),
    ({"backup_kms_key_id": "alias/backups"}, "aws_enclave_backup_kms_key_id (airlock_aws_backup_s3_kms_key_id): 'alias/backups' is not a KMS key ARN"),
    ({"backup_kms_key_id": KEY.replace("eu-west-1", "us-east-1")}, "is not in aws_enclave_region 'eu-west-1'"),
])
def test_bad_input_is_refused_naming_the_variable(changes, needle):
    errors = bk.airlock_backup_s3_input_errors(with_(**changes))
    assert any(needle in e for e in errors), errors


def test_bucket_names_s3_accepts():
    for name in ("abc", "airlock-prod-us-east-1-123456789012-backup", "a" * 63, "0backups9"):
        assert bk.airlock_is_bucket_name(name), name
    for name in ("a" * 64, "ab", "Backups", "back_ups", "backups-", "sthree-x", "x--x-s3", None, 12):
        assert not bk.airlock_is_bucket_name(name), name


def test_bucket_policy_denies_every_request_without_tls():
    (deny,) = bk.airlock_backup_bucket_policy("b1", "eu-west-1")["Statement"]
    assert deny == {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                    "Resource": ["arn:aws:s3:::b1", "arn:aws:s3:::b1/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    assert bk.airlock_backup_bucket_policy("b1", "cn-north-1")["Statement"][0]["Resource"][0] == "arn:aws-cn:s3:::b1"


def test_grant_names_one_bucket_and_one_prefix():
    policy = bk.airlock_backup_grant_policy("b1", "airlock/openhands/", "eu-west-1")
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["BackupListOwnPrefix"]["Condition"] == {
        "StringLike": {"s3:prefix": ["airlock/openhands", "airlock/openhands/*"]}}
    assert statements["BackupOwnObjects"]["Resource"] == "arn:aws:s3:::b1/airlock/openhands/*"
    assert all("*" not in str(s["Resource"]).replace("openhands/*", "") for s in statements.values())
    assert "BackupBucketKey" not in statements


def test_grant_with_a_kms_key_uses_it_through_s3_only():
    statements = {s["Sid"]: s for s in bk.airlock_backup_grant_policy("b1", "p/proxy", "eu-west-1", KEY)["Statement"]}
    key = statements["BackupBucketKey"]
    assert key["Resource"] == KEY and sorted(key["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert key["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}


@pytest.mark.parametrize("bucket,prefix", [("", "airlock/proxy"), ("b1", ""), ("b1", "/")])
def test_grant_never_widens_to_a_wildcard(bucket, prefix):
    with pytest.raises(ValueError):
        bk.airlock_backup_grant_policy(bucket, prefix, "eu-west-1")


def test_endpoint_policy_is_this_bucket_and_this_account():
    (statement,) = bk.airlock_backup_endpoint_policy("b1", "eu-west-1", ACCOUNT)["Statement"]
    assert statement["Resource"] == ["arn:aws:s3:::b1", "arn:aws:s3:::b1/*"]
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}
    assert "s3:*" not in statement["Action"] and "s3:PutBucketPolicy" not in statement["Action"]
    with pytest.raises(ValueError):
        bk.airlock_backup_endpoint_policy("", "eu-west-1", ACCOUNT)
