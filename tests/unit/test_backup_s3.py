"""The backup script's optional S3 copy (roles/backup/files/airlock-backup.py) against moto.

The script runs as the timer runs it (``airlock-backup --config FILE backup``) with a JSON
configuration whose s3 section names a bucket, a prefix and the moto server on loopback
as endpoint_url, and dummy credentials in the environment. The AWS endpoint variables are
removed and every proxy variable points at a closed loopback port (loopback itself
excepted), so a request that ignored endpoint_url would fail instead of leaving the host.
Results are read back with boto3.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.moto_server import MotoServer  # noqa: E402

SCRIPT = ROOT / "roles" / "backup" / "files" / "airlock-backup.py"
DEAD_PROXY = "http://127.0.0.1:9"


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
    """Run the backup script with an S3 section for ``bucket``; returns (result, archive dir)."""
    data = tmp_path / "state"
    (data / "sub").mkdir(parents=True)
    (data / "settings.json").write_text('{"llm": "x"}\n')
    (data / "sub" / "blob.bin").write_bytes(os.urandom(64 * 1024))
    archives = tmp_path / "archives"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and "proxy" not in k.lower()}
    env.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN="testing",
        AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true",
        HTTP_PROXY=DEAD_PROXY, HTTPS_PROXY=DEAD_PROXY, http_proxy=DEAD_PROXY, https_proxy=DEAD_PROXY,
        NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
    )

    def run(bucket: str, prefix: str = "airlock/host1"):
        config = tmp_path / "backup.json"
        config.write_text(json.dumps({
            "dir": str(archives), "prefix": "host1", "paths": [str(data)],
            "retention_count": 3, "retention_days": 30,
            "s3": {"bucket": bucket, "prefix": prefix, "region": "us-east-1", "endpoint_url": moto.url,
                   "sse": "AES256"},
        }))
        return subprocess.run([sys.executable, str(SCRIPT), "--config", str(config), "backup"], env=env,
                              capture_output=True, text=True, timeout=120)

    return run, archives


def test_archive_and_checksum_are_copied_encrypted(s3, backup):
    run, archives = backup
    s3.create_bucket(Bucket="airlock-backups")
    result = run("airlock-backups", prefix="/airlock/host1/")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    archive = Path(out["archive"])
    key = f"airlock/host1/{archive.name}"
    assert out["s3"] == f"s3://airlock-backups/{key}"

    listed = {o["Key"] for o in s3.list_objects_v2(Bucket="airlock-backups")["Contents"]}
    assert listed == {key, key + ".sha256"}
    for name, local in ((key, archive), (key + ".sha256", archive.with_name(archive.name + ".sha256"))):
        head = s3.head_object(Bucket="airlock-backups", Key=name)
        assert head["ServerSideEncryption"] == "AES256"
        body = s3.get_object(Bucket="airlock-backups", Key=name)["Body"].read()
        assert body == local.read_bytes()
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == out["sha256"]


def test_missing_bucket_fails_clearly_and_keeps_the_local_archive(s3, backup):
    run, archives = backup
    result = run("no-such-bucket")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("airlock-backup: backup failed: S3 copy to s3://no-such-bucket/airlock/host1/")
    assert "NoSuchBucket" in result.stderr and "the local archive" in result.stderr
    kept = sorted(archives.glob("host1-*.tar.gz"))
    assert len(kept) == 1 and kept[0].with_name(kept[0].name + ".sha256").exists()
    assert str(kept[0]) in result.stderr
    verify = subprocess.run([sys.executable, str(SCRIPT), "--config", str(archives.parent / "backup.json"), "verify"],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and json.loads(verify.stdout)["valid"] is True, verify.stderr
    assert "no-such-bucket" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
