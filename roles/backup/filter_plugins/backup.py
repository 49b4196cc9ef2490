"""Filters of the backup role (plain Python, unit-testable).

backup_input_errors(inputs)
    Every check argument specs cannot express; a list of messages, each starting with the
    name of the offending variable (empty when valid). ``inputs`` holds the role's variables
    without the ``backup_`` prefix; the repository password itself is never passed in, only
    ``restic_password_defined`` and ``restic_password_length``. ``legacy`` lists the former
    tar backup's variable names the user still sets.
backup_s3_repository(bucket, prefix, region, endpoint_url)
    restic's S3 repository string: s3:<endpoint>/<bucket>/<prefix>, the endpoint being
    endpoint_url, or AWS's regional one (https://s3.<region>.amazonaws.com).
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

PREFIX = "backup_"
PATH_RE = re.compile(r"^/[A-Za-z0-9._@+/-]*[A-Za-z0-9._@+-]$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
URL_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?/?$")
SUBSET_RE = re.compile(r"^(\d+(\.\d+)?%|\d+/\d+)$")
KEEPS = ("last", "hourly", "daily", "weekly", "monthly")
MIN_PASSWORD = 16
LEGACY = {
    "backup_dir": "backup_restic_repository",
    "backup_prefix": "backup_restic_host",
    "backup_retention_count": "backup_keep_* (restic forget)",
    "backup_retention_days": "backup_keep_* (restic forget)",
    "backup_s3_sse": "nothing (restic encrypts every object before upload)",
}


def backup_s3_repository(bucket, prefix, region, endpoint_url=""):
    endpoint = (endpoint_url or f"https://s3.{region}.amazonaws.com").rstrip("/")
    path = "/".join(part for part in str(prefix or "").split("/") if part)
    return f"s3:{endpoint}/{bucket}" + (f"/{path}" if path else "")


def _path_errors(name, value, errors):
    if not isinstance(value, str) or not PATH_RE.match(value) or ".." in value.split("/") or "//" in value:
        errors.append(f"{PREFIX}{name}: {value!r} must be an absolute path other than / (letters, digits, . _ - + @ and /)")
        return False
    return True


def backup_input_errors(inputs):
    errors = []
    for old in inputs.get("legacy") or []:
        errors.append(f"{old} is no longer used: backups are restic snapshots now; set {LEGACY.get(old, 'the backup_* variables')} instead")
    if not inputs.get("restic_password_defined"):
        errors.append(f"{PREFIX}restic_password is required: the restic repository's password, from vault or the environment "
                      "(the inventories map airlock_backup_password onto it)")
    elif (checks.strict_int(inputs.get("restic_password_length")) or 0) < MIN_PASSWORD:
        errors.append(f"{PREFIX}restic_password is too short: at least {MIN_PASSWORD} characters")
    paths = inputs.get("paths")
    if not isinstance(paths, list) or not paths:
        errors.append(f"{PREFIX}paths must list at least one absolute path")
    else:
        for i, value in enumerate(paths):
            _path_errors(f"paths[{i}]", value, errors)
    for name in ("restic_repository", "restic_password_file", "restic_cache_dir", "script_path", "config_path"):
        _path_errors(name, inputs.get(name), errors)
    repo = inputs.get("restic_repository")
    if isinstance(repo, str) and isinstance(paths, list):
        inside = [p for p in paths if isinstance(p, str) and (repo == p or repo.startswith(p.rstrip("/") + "/"))]
        if inside:
            errors.append(f"{PREFIX}restic_repository: {repo} lies inside the backed-up path {inside[0]}")
    if not isinstance(inputs.get("restic_host"), str) or not re.match(r"^[A-Za-z0-9._-]+$", inputs.get("restic_host") or ""):
        errors.append(f"{PREFIX}restic_host: {inputs.get('restic_host')!r} must be a host name (letters, digits, . _ -)")
    counts = {}
    for name in KEEPS:
        n = checks.strict_int(inputs.get(f"keep_{name}"))
        if n is None or n < 0:
            errors.append(f"{PREFIX}keep_{name} ({inputs.get(f'keep_{name}')}) must be an integer >= 0")
        counts[name] = n or 0
    if all(n == 0 for n in counts.values()) and not any(e.startswith(f"{PREFIX}keep_") for e in errors):
        errors.append(f"{PREFIX}keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly are all 0: "
                      "at least one must be >= 1 (retention would keep nothing)")
    subset = inputs.get("check_read_data_subset")
    if subset not in ("", None) and not SUBSET_RE.match(str(subset)):
        errors.append(f"{PREFIX}check_read_data_subset ({subset}) must be a percentage such as 5%, n/t such as 1/7, or empty")
    elif isinstance(subset, str) and subset.endswith("%") and not 0 < float(subset[:-1]) <= 100:
        errors.append(f"{PREFIX}check_read_data_subset ({subset}) must be a percentage above 0 and at most 100")
    if inputs.get("s3_enabled"):
        bucket = inputs.get("s3_bucket")
        if not bucket:
            errors.append(f"{PREFIX}s3_bucket is required when {PREFIX}s3_enabled is true")
        elif not isinstance(bucket, str) or not BUCKET_RE.match(bucket):
            errors.append(f"{PREFIX}s3_bucket: {bucket!r} is not an S3 bucket name")
        if not isinstance(inputs.get("s3_region"), str) or not REGION_RE.match(inputs.get("s3_region") or ""):
            errors.append(f"{PREFIX}s3_region: {inputs.get('s3_region')!r} is not an AWS region")
        url = inputs.get("s3_endpoint_url") or ""
        if url and not URL_RE.match(str(url)):
            errors.append(f"{PREFIX}s3_endpoint_url: {url!r} must be http(s)://host[:port]")
        prefix = inputs.get("s3_prefix")
        if not isinstance(prefix, str) or not re.match(r"^[A-Za-z0-9._/-]*$", prefix):
            errors.append(f"{PREFIX}s3_prefix: {prefix!r} may hold letters, digits, . _ - and / only")
    return errors


class FilterModule:
    def filters(self):
        return {
            "backup_input_errors": backup_input_errors,
            "backup_s3_repository": backup_s3_repository,
        }
