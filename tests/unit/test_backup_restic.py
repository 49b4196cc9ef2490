"""The backup command (roles/backup/files/airlock-backup.py) with the distribution's restic,
on this machine, as the timer runs it (``airlock-backup --config FILE backup``) and as
playbooks/restore.yml runs it (``restore``, here under ``--root`` a scratch directory).

What is proven: a backup makes a snapshot, skips absent paths and passes ``restic check``;
no repository file holds a known secret in clear (the same search finds it in the source,
the positive control); a restore brings a deleted file and a SQLite database back; a
restore writes the configured paths and nothing else, even from a snapshot that holds
more; retention removes old snapshots; a wrong password fails the backup and the restore
(and the restore leaves the host as it was); a damaged repository fails the backup at its
check. The role's Molecule scenario (monitoring) repeats the main ones on a deployed host.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles" / "backup" / "files" / "airlock-backup.py"
CANARY = "airlock-canary-LLM-key-sk-3f9a1c7e5b2d4068"



@pytest.fixture(autouse=True)
def _restic_installed():
    assert shutil.which("restic"), "restic is not installed: tools/testbed/install-packages.sh installs it (apt)"


class Host:
    """A scratch 'host': source paths, a password file, a local repository, the JSON config."""

    def __init__(self, base: Path, keep=None):
        self.base = base
        self.src = base / "src"
        (self.src / "state" / "conversations").mkdir(parents=True)
        (self.src / "conf").mkdir()
        (self.src / "state" / "settings.json").write_text('{"llm_model": "drill"}\n')
        (self.src / "state" / "conversations" / "c1.json").write_text('{"id": "c1"}\n')
        (self.src / "conf" / "secrets.env").write_text(f"LLM_API_KEY={CANARY}\n")
        os.chmod(self.src / "conf" / "secrets.env", 0o600)
        db = sqlite3.connect(self.src / "state" / "openhands.db")
        db.execute("create table t(x)")
        db.executemany("insert into t values (?)", [(i,) for i in range(2000)])
        db.commit()
        db.close()
        self.password = base / "restic.pass"
        self.password.write_text("unit-test-restic-password-0123")
        os.chmod(self.password, 0o600)
        self.repo = base / "repo"
        self.paths = [str(self.src / "state"), str(self.src / "conf"), str(self.src / "absent")]
        self.config = base / "backup.json"
        self.write_config(keep or {"last": 0, "daily": 7, "weekly": 4})

    def write_config(self, keep, password_file=None, repositories=None):
        self.config.write_text(json.dumps({
            "paths": self.paths, "host": "unit-host", "password_file": str(password_file or self.password),
            "cache_dir": str(self.base / "cache"), "stage_dir": str(self.base / "lib" / "sqlite"),
            "repositories": repositories or [{"name": "local", "url": str(self.repo)}],
            "keep": keep, "check_read_data_subset": "100%", "restore_services": []}))

    def run(self, *args, env=None):
        return subprocess.run([sys.executable, str(SCRIPT), "--config", str(self.config), *args],
                              capture_output=True, text=True, timeout=300, env=env)

    def ok(self, *args):
        res = self.run(*args)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout) if res.stdout.strip().startswith(("{", "[")) else res.stdout

    def restic(self, *args):
        return subprocess.run(["restic", "--repo", str(self.repo), "--password-file", str(self.password),
                               "--cache-dir", str(self.base / "cache"), *args], capture_output=True, text=True, timeout=300)

    def snapshots(self):
        return self.ok("list", "--json")


def files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture
def host(tmp_path):
    h = Host(tmp_path)
    assert h.ok("init") == {"created": ["local"], "existing": []}
    return h


def test_a_backup_is_a_checked_snapshot_and_absent_paths_are_skipped(host):
    out = host.ok("backup")
    assert out["paths"] == {host.paths[0]: "present", host.paths[1]: "present", host.paths[2]: "absent"}
    assert out["repositories"]["local"]["check"] == "ok"
    assert out["sqlite"] == [str(host.src / "state" / "openhands.db")]
    snaps = host.snapshots()
    assert len(snaps) == 1 and snaps[0]["id"] == out["repositories"]["local"]["snapshot"]
    assert host.restic("check", "--read-data").returncode == 0
    # The SQLite stage holds a copy only during the run.
    assert not (host.base / "lib" / "sqlite").exists()
    # A second init finds the repository and changes nothing.
    assert host.ok("init") == {"created": [], "existing": ["local"]}


def test_the_repository_holds_no_secret_in_clear(host):
    assert files_holding(host.src, CANARY.encode()), "positive control: the search finds the key in the source"
    host.ok("backup")
    repo_files = [p for p in host.repo.rglob("*") if p.is_file()]
    assert len(repo_files) > 5
    assert files_holding(host.repo, CANARY.encode()) == []
    assert files_holding(host.repo, b"LLM_API_KEY") == []
    assert files_holding(host.repo, b"conversations") == [], "file names are encrypted too"
    # restic itself reads it back with the password: the data is there, encrypted.
    dump = host.restic("dump", "latest", str(host.src / "conf" / "secrets.env"))
    assert dump.returncode == 0 and CANARY in dump.stdout


def test_a_restore_brings_deleted_files_and_the_database_back(host):
    host.ok("backup")
    shutil.rmtree(host.src / "state")
    (host.src / "conf" / "secrets.env").unlink()
    (host.src / "conf" / "added-after.txt").write_text("not in the snapshot\n")
    out = host.ok("restore")
    assert out["restored"] == host.paths[:2] and out["repository"] == "local"
    assert (host.src / "state" / "conversations" / "c1.json").read_text() == '{"id": "c1"}\n'
    assert (host.src / "conf" / "secrets.env").read_text() == f"LLM_API_KEY={CANARY}\n"
    assert (host.src / "conf" / "secrets.env").stat().st_mode & 0o777 == 0o600
    # Each configured path is replaced by its copy in the snapshot.
    assert not (host.src / "conf" / "added-after.txt").exists()
    db = sqlite3.connect(host.src / "state" / "openhands.db")
    assert db.execute("select count(*), sum(x) from t").fetchone() == (2000, sum(range(2000)))
    assert out["databases"] == [str(host.src / "state" / "openhands.db")]


def test_a_restore_writes_the_configured_paths_only(host, tmp_path):
    """A snapshot that holds more than the configured paths (here made by restic directly,
    with a path outside them) restores the configured paths and nothing else."""
    outside = host.base / "outside"
    outside.mkdir()
    (outside / "cron-job").write_text("* * * * * root evil\n")
    made = host.restic("backup", "--host", "unit-host", "--tag", "airlock", *host.paths[:2], str(outside))
    assert made.returncode == 0, made.stderr
    shutil.rmtree(outside)
    shutil.rmtree(host.src / "state")
    host.ok("restore")
    assert (host.src / "state" / "settings.json").exists()
    assert not outside.exists(), "the restore wrote a path outside the configured ones"
    # Under a scratch root: every file restored lies under a configured path.
    scratch = tmp_path / "scratch-root"
    scratch.mkdir()
    out = host.ok("restore", "--root", str(scratch))
    written = sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*") if not p.is_dir())
    assert written and out["files"] == len(written)
    allowed = tuple(p.lstrip("/") + "/" for p in host.paths)
    assert [w for w in written if not w.startswith(allowed)] == []


def test_retention_removes_old_snapshots(host):
    host.write_config({"last": 2})
    ids = [host.ok("backup")["repositories"]["local"]["snapshot"] for _ in range(4)]
    kept = [s["id"] for s in host.snapshots()]
    assert kept == ids[-2:], (ids, kept)
    assert host.restic("check").returncode == 0


def test_a_wrong_password_fails_backup_and_restore_and_changes_nothing(host):
    host.ok("backup")
    wrong = host.base / "wrong.pass"
    wrong.write_text("not-the-repository-password")
    host.write_config({"daily": 7}, password_file=wrong)
    res = host.run("backup")
    assert res.returncode == 1 and "wrong password" in res.stderr, res.stderr
    before = (host.src / "state" / "settings.json").read_text()
    (host.src / "state" / "settings.json").write_text("changed after the backup\n")
    res = host.run("restore")
    assert res.returncode == 1 and "wrong password" in res.stderr, res.stderr
    assert (host.src / "state" / "settings.json").read_text() == "changed after the backup\n" != before
    res = host.run("init")
    assert res.returncode == 1 and "wrong password" in res.stderr
    assert len(host.restic("snapshots", "--json").stdout) > 2  # the right password still opens it


def test_a_damaged_repository_fails_the_backup_at_its_check(host):
    """Bytes of a stored pack flipped on disk: the next backup and its retention do not read
    that pack (the data is deduplicated, nothing is pruned), so only restic check finds the
    damage, and the run fails there."""
    host.write_config({"last": 5})
    first = host.ok("backup")
    assert first["repositories"]["local"]["check"] == "ok"
    packs = sorted((p for p in (host.repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    assert packs
    for pack in packs:
        data = bytearray(pack.read_bytes())
        for i in range(len(data) // 3, len(data) // 3 + 64):
            data[i] ^= 0xFF
        os.chmod(pack, 0o600)
        pack.write_bytes(bytes(data))
    res = host.run("backup")
    assert res.returncode == 1, res.stdout
    assert "repository local: restic check failed" in res.stderr, res.stderr
    # The snapshot was taken and kept; the failure is the check's.
    assert len(host.snapshots()) == 2


def test_a_restore_keeps_the_live_password_file_and_configuration(tmp_path):
    """Both may lie under a backed-up path (the role's sit in /etc/airlock): a restore puts
    the snapshot's copy of that path in place but keeps their live content, so a password
    changed since the snapshot still opens the repository afterwards."""
    h = Host(tmp_path)
    inner = h.src / "conf" / "restic.pass"
    inner.write_text(h.password.read_text())
    os.chmod(inner, 0o600)
    h.password = inner
    h.config = h.src / "conf" / "backup.json"
    h.write_config({"daily": 7}, password_file=inner)
    h.ok("init")
    h.ok("backup")
    new = tmp_path / "new.pass"
    new.write_text("rotated-restic-password-456789")
    assert h.restic("key", "add", "--new-password-file", str(new)).returncode == 0
    inner.write_text(new.read_text())
    h.write_config({"daily": 9}, password_file=inner)
    (h.src / "conf" / "secrets.env").unlink()
    h.ok("restore")
    assert (h.src / "conf" / "secrets.env").read_text() == f"LLM_API_KEY={CANARY}\n"
    assert inner.read_text() == "rotated-restic-password-456789" and inner.stat().st_mode & 0o777 == 0o600
    assert json.loads(h.config.read_text())["keep"] == {"daily": 9}
    h.ok("backup")
