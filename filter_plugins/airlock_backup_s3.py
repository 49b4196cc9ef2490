"""The S3 backup repository of airlock's AWS tier: the bucket's name, its policy, each tier's
grant on its own prefix, the S3 gateway endpoint's policy, and the input checks.

Names are derived, never looked up, so the provisioning role (roles/aws_enclave), its
teardown and the hosts' backup role (inventories/aws/group_vars/all.yml maps them onto
backup_s3_*) agree on them without an API call:

    {{ inputs | airlock_backup_bucket_name('123456789012') }}
      -> "airlock-prod-eu-west-1-123456789012-backup"
    {{ inputs | airlock_backup_prefixes }}
      -> {"proxy": "airlock/proxy", "openhands": "airlock/openhands"}

Every policy names the one bucket (and, for a grant, the one prefix) by ARN; nothing here
ever yields a wildcard bucket. Unit tested in tests/unit/test_filter_airlock_backup_s3.py,
read back against moto in tests/aws/test_evidence.py.
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
# The AWS inventory's names for these variables (inventories/aws/group_vars/all.yml): every
# message names both, so a user who set the airlock_* one finds it.
USER_NAMES = {
    "backup_bucket": "airlock_aws_backup_s3_bucket",
    "backup_prefix": "airlock_aws_backup_s3_prefix",
    "backup_noncurrent_days": "airlock_aws_backup_s3_noncurrent_days",
    "backup_kms_key_id": "airlock_aws_backup_s3_kms_key_id",
}
POLICY_VERSION = "2012-10-17"
TIERS = ("proxy", "openhands")
# S3's rules for a bucket name (general purpose buckets): 3-63 of [a-z0-9.-], starting and
# ending with a letter or digit, no "..", not an IPv4 address, none of the reserved
# prefixes and suffixes. Dots are refused too: a dotted name breaks TLS for the
# virtual-hosted name (<bucket>.s3.<region>.amazonaws.com) that restic uses.
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", "--x-s3", "--table-s3")
# One path element or more of [A-Za-z0-9._-], separated by single slashes.
KEY_PREFIX = re.compile(r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$")
ACCOUNT_PLACEHOLDER = "000000000000"  # name length check before the account is known
# What restic does in its repository, and all a host may do: list its own prefix, read,
# write and delete (prune) its own objects.
OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")
# What may pass the gateway endpoint, on this bucket only.
ENDPOINT_ACTIONS = ("s3:GetBucketLocation", "s3:ListBucket", *OBJECT_ACTIONS)


def _bucket_arn(bucket, region):
    if not bucket or not isinstance(bucket, str):
        raise ValueError("airlock_backup_s3: no bucket name given")
    return f"arn:{checks.aws_partition(region)}:s3:::{bucket}"


def airlock_backup_bucket_name(inputs, account_id=ACCOUNT_PLACEHOLDER):
    """The backup bucket: ``backup_bucket`` when given, else
    ``<project>-<environment>-<region>-<account>-backup`` (bucket names are global)."""
    given = inputs.get("backup_bucket") or ""
    if given:
        return given
    return f"{inputs.get('project')}-{inputs.get('environment')}-{inputs.get('region')}-{account_id}-backup"


def airlock_backup_prefixes(inputs, tiers=TIERS):
    """Each tier's key prefix in the bucket: ``<backup_prefix>/<tier>`` (no slash at either end)."""
    base = str(inputs.get("backup_prefix") or "").strip("/")
    return {tier: f"{base}/{tier}" if base else tier for tier in tiers}


def airlock_is_bucket_name(value):
    """True for a name S3 accepts for a general purpose bucket (and without dots)."""
    return (isinstance(value, str) and bool(BUCKET_NAME.match(value))
            and not value.startswith(BUCKET_RESERVED_PREFIXES) and not value.endswith(BUCKET_RESERVED_SUFFIXES))


def airlock_backup_s3_input_errors(inputs):
    """Validate the backup bucket's inputs; every message names its aws_enclave_* variable.

    Only when ``backup_bucket_enabled``.
    """
    def p(key):
        return f"{PREFIX}{key} ({USER_NAMES[key]})"

    errors = []
    if not inputs.get("backup_bucket_enabled"):
        return errors
    given = inputs.get("backup_bucket") or ""
    if not isinstance(given, str):
        errors.append(f"{p('backup_bucket')}: must be a string (an S3 bucket name) or empty")
    else:
        name = airlock_backup_bucket_name(inputs)
        if given and not airlock_is_bucket_name(given):
            errors.append(f"{p('backup_bucket')}: {given!r} is not an S3 bucket name (3-63 of [a-z0-9-], starting and "
                          "ending with a letter or digit; no dots, no reserved prefix or suffix)")
        elif not given and not airlock_is_bucket_name(name):
            errors.append(f"{p('backup_bucket')}: the default name {name!r} (project-environment-region-account-backup) "
                          "is not a valid S3 bucket name (over 63 characters?); set one")
    prefix = inputs.get("backup_prefix")
    if not isinstance(prefix, str) or not KEY_PREFIX.match(prefix) or len(prefix) > 200:
        errors.append(f"{p('backup_prefix')}: {prefix!r} must be path elements of [A-Za-z0-9._-] separated by single "
                      "slashes, without a slash at either end (the tiers' prefixes are <prefix>/proxy, <prefix>/openhands)")
    days = inputs.get("backup_noncurrent_days")
    number = checks.strict_int(days)
    if number is None or number < 1 or number > 36500:
        errors.append(f"{p('backup_noncurrent_days')}: {days!r} must be a whole number of days from 1 to 36500 "
                      "(how long S3 keeps a replaced or deleted backup object)")
    kms = inputs.get("backup_kms_key_id") or ""
    if kms and not checks.KMS_KEY_ARN.match(str(kms)):
        errors.append(f"{p('backup_kms_key_id')}: {kms!r} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)")
    elif kms and f":kms:{inputs.get('region')}:" not in kms:
        errors.append(f"{p('backup_kms_key_id')}: {kms!r} is not in {PREFIX}region {inputs.get('region')!r}; "
                      "S3 needs a key of the bucket's region")
    return errors


def airlock_backup_bucket_policy(bucket, region):
    """The bucket's policy: no request without TLS, from anyone."""
    arn = _bucket_arn(bucket, region)
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ],
    }


def airlock_backup_grant_policy(bucket, prefix, region, kms_key_id=""):
    """One tier's inline policy: list its own prefix only, read, write and delete objects under
    it only; with a KMS key, use that key (through S3 only) for them."""
    arn = _bucket_arn(bucket, region)
    prefix = str(prefix or "").strip("/")
    if not prefix:
        raise ValueError("airlock_backup_grant_policy: an empty prefix would grant the whole bucket")
    statements = [
        {"Sid": "BackupListOwnPrefix", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": arn,
         "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}},
        {"Sid": "BackupFindTheBucketsRegion", "Effect": "Allow", "Action": "s3:GetBucketLocation", "Resource": arn},
        {"Sid": "BackupOwnObjects", "Effect": "Allow", "Action": list(OBJECT_ACTIONS),
         "Resource": f"{arn}/{prefix}/*"},
    ]
    if kms_key_id:
        statements.append(
            {"Sid": "BackupBucketKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
             "Resource": kms_key_id,
             "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}})
    return {"Version": POLICY_VERSION, "Statement": statements}


def airlock_backup_endpoint_policy(bucket, region, account_id):
    """The S3 gateway endpoint's policy: this bucket only, principals of this account only, so
    a stolen credential cannot carry data through the endpoint into another bucket."""
    arn = _bucket_arn(bucket, region)
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {"Sid": "BackupBucketOnly", "Effect": "Allow", "Principal": "*", "Action": list(ENDPOINT_ACTIONS),
             "Resource": [arn, f"{arn}/*"],
             "Condition": {"StringEquals": {"aws:PrincipalAccount": str(account_id)}}},
        ],
    }


class FilterModule:
    """airlock S3 backup filters (see the module docstring)."""

    def filters(self):
        return {
            "airlock_backup_bucket_name": airlock_backup_bucket_name,
            "airlock_backup_prefixes": airlock_backup_prefixes,
            "airlock_backup_s3_input_errors": airlock_backup_s3_input_errors,
            "airlock_backup_bucket_policy": airlock_backup_bucket_policy,
            "airlock_backup_grant_policy": airlock_backup_grant_policy,
            "airlock_backup_endpoint_policy": airlock_backup_endpoint_policy,
            "airlock_is_bucket_name": airlock_is_bucket_name,
        }
