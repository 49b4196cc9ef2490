"""Unit tests of the backup role's input checks (roles/backup/filter_plugins/backup.py): each
message names the variable (the password reaches the checks as its length only)."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]

F = load_module(ROOT / "roles/backup/filter_plugins/backup.py", "backup_filters")
OK = {
    "legacy": [], "restic_password_defined": True, "restic_password_length": 40,
    "paths": ["/var/lib/openhands", "/etc/nftables.conf", "/etc/airlock-llm-gateway"],
    "restic_repository": "/var/backups/airlock", "restic_password_file": "/etc/airlock/backup-restic.pass",
    "restic_cache_dir": "/var/cache/airlock-backup", "restic_host": "openhands-1", "script_path": "/usr/local/sbin/airlock-backup",
    "config_path": "/etc/airlock/backup.json", "keep_last": 0, "keep_hourly": 0, "keep_daily": 14, "keep_weekly": 4,
    "keep_monthly": 6, "check_read_data_subset": "5%", "s3_enabled": False, "s3_bucket": "", "s3_prefix": "airlock/h",
    "s3_region": "us-east-1", "s3_endpoint_url": "",
}


def test_valid_input_has_no_errors():
    assert F.backup_input_errors(OK) == []
    assert F.backup_input_errors({**OK, "s3_enabled": True, "s3_bucket": "my-backups", "check_read_data_subset": "1/7"}) == []
    assert F.backup_input_errors({**OK, "check_read_data_subset": ""}) == []


@pytest.mark.parametrize("change, message", [
    ({"restic_password_defined": False}, "backup_restic_password is required"),
    ({"restic_password_length": 8}, "backup_restic_password is too short"),
    ({"paths": []}, "backup_paths must list at least one"),
    ({"paths": ["relative/path"]}, "backup_paths[0]"),
    ({"paths": ["/etc/a", "/"]}, "backup_paths[1]"),
    ({"paths": ["/etc/[ab]"]}, "backup_paths[0]"),
    ({"paths": ["/etc/../root"]}, "backup_paths[0]"),
    ({"paths": ["/var/backups"]}, "backup_restic_repository: /var/backups/airlock lies inside the backed-up path /var/backups"),
    ({"restic_repository": "var/backups"}, "backup_restic_repository"),
    ({"restic_host": "a host"}, "backup_restic_host"),
    ({"keep_daily": -1}, "backup_keep_daily (-1) must be an integer >= 0"),
    ({"keep_daily": "many"}, "backup_keep_daily (many)"),
    ({"keep_daily": 1.5}, "backup_keep_daily (1.5) must be an integer >= 0"),
    ({"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}, "at least one must be >= 1"),
    ({"check_read_data_subset": "all"}, "backup_check_read_data_subset (all)"),
    ({"check_read_data_subset": "0%"}, "backup_check_read_data_subset (0%)"),
    ({"s3_enabled": True}, "backup_s3_bucket is required when backup_s3_enabled is true"),
    ({"s3_enabled": True, "s3_bucket": "Not_A_Bucket"}, "backup_s3_bucket"),
    ({"s3_enabled": True, "s3_bucket": "b-1", "s3_region": "mars"}, "backup_s3_region"),
    ({"s3_enabled": True, "s3_bucket": "b-1", "s3_endpoint_url": "minio:9000"}, "backup_s3_endpoint_url"),
    ({"legacy": ["backup_retention_count"]}, "backup_retention_count is no longer used"),
    ({"legacy": ["backup_dir"]}, "set backup_restic_repository instead"),
])
def test_each_mistake_is_named(change, message):
    errors = F.backup_input_errors({**OK, **change})
    assert any(message in e for e in errors), errors

