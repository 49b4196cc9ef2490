"""The backup command's S3 repository (roles/backup/files/airlock-backup.py, restic's s3:
backend) against moto on loopback.

The command runs as the timer runs it (``airlock-backup --config FILE backup``) with two
repositories, the local one and ``s3:<moto>/<bucket>/<prefix>`` (what the role writes when
backup_s3_enabled is true), and dummy credentials in the environment. The AWS endpoint
variables are removed and every proxy variable points at a closed loopback port (loopback
itself excepted), so a request that ignored the endpoint would fail instead of leaving the
host. Results are read back with boto3.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.modules import load_module
from helpers.moto_server import MotoServer, free_port

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = ROOT / "roles" / "backup" / "files" / "airlock-backup.py"
FILTERS = load_module(ROOT / "roles" / "backup" / "filter_plugins" / "backup.py", "backup_filters")
DEAD_PROXY = "http://127.0.0.1:9"
CANARY = "airlock-canary-s3-LLM-key-sk-77d0e4b1a9"


@pytest.fixture(autouse=True)
def _restic_installed():
    assert shutil.which("restic"), "restic is not installed: tools/testbed/install-packages.sh installs it (apt)"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto-s3") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture
def s3(moto):
    moto.reset()
    return moto.client("s3")


@pytest.fixture
def backup(moto, tmp_path):
    """Run the backup command with the local and an S3 repository; returns run(cmd, bucket, ...)."""
    data = tmp_path / "state"
    (data / "sub").mkdir(parents=True)
    (data / "settings.json").write_text('{"llm": "x"}\n')
    (data / "secrets.env").write_text(f"LLM_API_KEY={CANARY}\n")
    (data / "sub" / "blob.bin").write_bytes(os.urandom(64 * 1024))
    password = tmp_path / "restic.pass"
    password.write_text("s3-test-restic-password-0123")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and "proxy" not in k.lower()}
    env.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN="testing",
        AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true",
        HTTP_PROXY=DEAD_PROXY, HTTPS_PROXY=DEAD_PROXY, http_proxy=DEAD_PROXY, https_proxy=DEAD_PROXY,
        NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
    )

    def run(cmd: str, bucket: str, *args: str, prefix: str = "/airlock/host1/", endpoint: str | None = None):
        config = tmp_path / "backup.json"
        config.write_text(json.dumps({
            "paths": [str(data)], "host": "host1", "password_file": str(password),
            "cache_dir": str(tmp_path / "cache"), "stage_dir": str(tmp_path / "lib" / "sqlite"),
            "repositories": [{"name": "local", "url": str(tmp_path / "repo")},
                             {"name": "s3", "url": FILTERS.backup_s3_repository(bucket, prefix, "us-east-1",
                                                                                endpoint or moto.url)}],
            "keep": {"last": 3}, "check_read_data_subset": "100%",
        }))
        return subprocess.run([sys.executable, str(SCRIPT), "--config", str(config), cmd, *args], env=env,
                              capture_output=True, text=True, timeout=300)

    return run, data


def test_the_s3_repository_string():
    assert FILTERS.backup_s3_repository("b", "/airlock/host1/", "eu-west-1") == "s3:https://s3.eu-west-1.amazonaws.com/b/airlock/host1"
    assert FILTERS.backup_s3_repository("b", "", "us-east-1", "http://127.0.0.1:5000/") == "s3:http://127.0.0.1:5000/b"


def test_snapshots_land_in_the_bucket_encrypted_and_restore_from_it(s3, backup):
    run, data = backup
    s3.create_bucket(Bucket="airlock-backups")
    init = run("init", "airlock-backups")
    assert init.returncode == 0 and json.loads(init.stdout)["created"] == ["local", "s3"], init.stderr
    result = run("backup", "airlock-backups")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["repositories"]["s3"]["check"] == "ok" and out["repositories"]["local"]["check"] == "ok"

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="airlock-backups")["Contents"]]
    assert all(k.startswith("airlock/host1/") for k in keys), keys
    assert "airlock/host1/config" in keys
    assert [k for k in keys if k.startswith("airlock/host1/snapshots/")]
    assert [k for k in keys if k.startswith("airlock/host1/data/")]
    for key in keys:  # no object holds the secret (or the file names) in clear
        body = s3.get_object(Bucket="airlock-backups", Key=key)["Body"].read()
        assert CANARY.encode() not in body and b"secrets.env" not in body, key

    listed = run("list", "airlock-backups", "--json", "--repository", "s3")
    assert [s["id"] for s in json.loads(listed.stdout)] == [out["repositories"]["s3"]["snapshot"]]
    # The host is lost: the local repository is gone, the S3 one brings the state back.
    shutil.rmtree(data.parent / "repo")
    shutil.rmtree(data)
    restored = run("restore", "airlock-backups", "--repository", "s3")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["repository"] == "s3"
    assert (data / "secrets.env").read_text() == f"LLM_API_KEY={CANARY}\n"


def test_an_unreachable_s3_fails_clearly_and_the_local_snapshot_is_kept(s3, backup):
    run, data = backup
    dead = f"http://127.0.0.1:{free_port()}"
    init = run("init", "airlock-backups", endpoint=dead)
    assert init.returncode == 1 and "repository s3: restic init failed" in init.stderr, init.stderr
    result = run("backup", "airlock-backups", endpoint=dead)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("airlock-backup: backup failed: repository s3: restic backup failed"), result.stderr
    out = json.loads(result.stdout)
    assert out["repositories"]["local"]["check"] == "ok" and "error" in out["repositories"]["s3"]
    local = run("list", "airlock-backups", "--json", endpoint=dead)
    assert [s["id"] for s in json.loads(local.stdout)] == [out["repositories"]["local"]["snapshot"]]
