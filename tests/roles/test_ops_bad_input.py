"""Bad input to the auditd, monitoring and backup roles is rejected before any change.

Each case runs the role against localhost with one bad value (every path the role would
write pointed into a temporary directory), and asserts that the run fails, that the
message names the variable, that the recap shows changed=0 and that nothing was written.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_role(tmp_path, role, extra):
    pb = tmp_path / "pb.yml"
    pb.write_text(f"- hosts: localhost\n  connection: local\n  gather_facts: true\n  roles:\n    - role: {role}\n")
    out = tmp_path / "out"
    safe = {
        "monitoring": {"monitoring_install_dir": str(out / "lib"), "monitoring_config_path": str(out / "alertd.json"),
                       "monitoring_env_path": str(out / "alertd.env")},
        "backup": {"backup_restic_repository": str(out / "backups"), "backup_config_path": str(out / "backup.json"),
                   "backup_script_path": str(out / "airlock-backup"), "backup_restic_password_file": str(out / "restic.pass"),
                   "backup_restic_cache_dir": str(out / "cache"), "backup_restic_password": "a-valid-restic-password-0123"},
        "auditd": {"auditd_install_packages": False, "auditd_apply": False, "auditd_rules_dir": str(out / "rules.d"),
                   "auditd_conf_path": str(out / "auditd.conf")},
    }[role]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    vars_ = {**safe, **extra, "ansible_python_interpreter": sys.executable}
    res = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(pb), "-e", json.dumps(vars_)],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    return res, out


CASES = [
    ("monitoring", {"monitoring_sinks": [{"type": "pager", "path": "/x"}]}, "monitoring_sinks[0].type: unknown sink type pager"),
    ("monitoring", {"monitoring_sinks": [{"type": "log", "path": "/tmp/a"}, {"type": "webhook", "url": "hooks.example.com/x"}]},
     "monitoring_sinks[1].url: malformed webhook URL"),
    ("monitoring", {"monitoring_sinks": [{"type": "webhook", "url": "https://exa mple.com/"}]}, "monitoring_sinks[0].url: malformed webhook URL"),
    ("monitoring", {"monitoring_health_upgrade_max_age_hours": -1}, "monitoring_health_upgrade_max_age_hours must be whole hours"),
    ("monitoring", {"monitoring_health_upgrade_max_age_hours": 9000}, "monitoring_health_upgrade_max_age_hours must be whole hours"),
    ("backup", {"backup_restic_password": None}, "backup_restic_password"),
    ("backup", {"backup_restic_password": "short"}, "backup_restic_password is too short"),
    ("backup", {"backup_keep_daily": -1}, "backup_keep_daily (-1) must be an integer >= 0"),
    ("backup", {"backup_keep_daily": 0, "backup_keep_weekly": 0, "backup_keep_monthly": 0}, "at least one must be >= 1"),
    ("backup", {"backup_paths": ["/etc/open hands"]}, "backup_paths[0]: '/etc/open hands' must be an absolute path"),
    ("backup", {"backup_paths": ["/etc/*"]}, "backup_paths[0]: '/etc/*' must be an absolute path"),
    ("backup", {"backup_s3_enabled": True}, "backup_s3_bucket is required when backup_s3_enabled is true"),
    ("backup", {"backup_check_read_data_subset": "lots"}, "backup_check_read_data_subset (lots)"),
    ("backup", {"backup_retention_count": 14}, "backup_retention_count is no longer used"),
    ("auditd", {"auditd_disk_full_action": "ignore"}, "auditd_disk_full_action=ignore"),
    ("auditd", {"auditd_admin_space_left_action": "suspend"}, "auditd_admin_space_left_action=suspend"),
    ("auditd", {"auditd_disk_full_action": "explode"}, "auditd_disk_full_action"),
    ("auditd", {"auditd_netfilter_refresh_exe": "egress-nft"}, "auditd_netfilter_refresh_exe: every entry must be an absolute file path"),
    ("auditd", {"auditd_netfilter_daemon_binaries": ["/usr/sbin/xtables nft"]},
     "auditd_netfilter_daemon_binaries: every entry must be an absolute file path"),
    ("monitoring", {"monitoring_netfilter_low_severity": "loud"}, "monitoring_netfilter_low_severity must be one of"),
    ("monitoring", {"monitoring_netfilter_low_keys": ["airlock_egress_refresh"]},
     "monitoring_netfilter_expected_keys and monitoring_netfilter_low_keys share"),
    ("monitoring", {"monitoring_netfilter_expected_keys": ["bad key"]}, "monitoring_netfilter_expected_keys"),
]


@pytest.mark.parametrize("role, extra, message", CASES, ids=[f"{c[0]}-{next(iter(c[1]))}-{i}" for i, c in enumerate(CASES)])
def test_rejected_before_any_change(tmp_path, role, extra, message):
    res, out = run_role(tmp_path, role, extra)
    text = res.stdout + res.stderr
    assert res.returncode != 0, text[-2000:]
    assert message in text, text[-3000:]
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0\s", text), text[-1500:]
    assert not out.exists(), f"the role wrote {list(out.rglob('*'))} before failing"


def test_good_input_renders(tmp_path):
    """The same harness with valid input succeeds (so the failures above are the bad values)."""
    res, out = run_role(tmp_path, "auditd", {"auditd_conf_path": str(tmp_path / "auditd.conf")})
    assert res.returncode == 0, (res.stdout + res.stderr)[-2000:]
    assert (out / "rules.d" / "30-airlock.rules").exists()
