#!/usr/bin/env python3
"""airlock-backup: local archives of state and configuration, retention, optional S3 copy.

  airlock-backup [--config FILE] backup             make an archive now, prune, upload
  airlock-backup [--config FILE] list [--json]      archives, newest last
  airlock-backup [--config FILE] restore [--archive latest|NAME|PATH] [--root DIR]
  airlock-backup [--config FILE] verify [--archive ...]   check an archive against its manifest

An archive is <dir>/<prefix>-<UTC timestamp>.tar.gz holding the configured paths (relative
to /) and MANIFEST.json (sha256, mode, owner of every file); <archive>.sha256 holds the
archive's own checksum. SQLite databases (*.db, *.sqlite, *.sqlite3) are copied with
SQLite's online backup API, so a running service never yields a torn database. Paths that
do not exist on this host are recorded as absent and skipped.

Restore checks the archive checksum and every member against the manifest BEFORE it
touches anything, then replaces each backed-up path with its archived copy (owners,
modes and times kept) and checks the restored files against the manifest again.
Python 3 standard library; boto3 (or the aws CLI) only for the optional S3 copy.
"""
import argparse
import datetime
import hashlib
import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
SQLITE_MAGIC = b"SQLite format 3\x00"
MANIFEST = "MANIFEST.json"


class BackupError(Exception):
    pass


def sha256_file(path, h=None):
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_config(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg.setdefault("dir", "/var/backups/airlock")
    cfg.setdefault("prefix", socket.gethostname())
    cfg.setdefault("paths", [])
    cfg.setdefault("retention_count", 14)
    cfg.setdefault("retention_days", 30)
    cfg.setdefault("s3", {})
    if not isinstance(cfg["retention_count"], int) or cfg["retention_count"] < 1:
        raise BackupError("retention_count must be an integer >= 1")
    if not isinstance(cfg["retention_days"], int) or cfg["retention_days"] < 1:
        raise BackupError("retention_days must be an integer >= 1")
    for p in cfg["paths"]:
        if not p.startswith("/") or os.path.normpath(p) in ("/", "/."):
            raise BackupError(f"paths: {p!r} must be an absolute path other than /")
    return cfg


def is_sqlite(path):
    if not path.endswith(SQLITE_SUFFIXES):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def walk(root):
    """Every file, symlink and directory under root (root itself included)."""
    yield root
    if os.path.isdir(root) and not os.path.islink(root):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in dirnames + sorted(filenames):
                yield os.path.join(dirpath, name)


def archives(cfg):
    d = cfg["dir"]
    if not os.path.isdir(d):
        return []
    names = [n for n in os.listdir(d) if n.startswith(cfg["prefix"] + "-") and n.endswith(".tar.gz")]
    return sorted(os.path.join(d, n) for n in names)  # the UTC timestamp in the name sorts by age


def do_backup(cfg):
    started = time.monotonic()
    os.makedirs(cfg["dir"], mode=0o700, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    final = os.path.join(cfg["dir"], f"{cfg['prefix']}-{stamp}.tar.gz")
    tmp = final + ".partial"
    manifest = {"created": stamp, "host": socket.gethostname(), "paths": {}, "files": {}}
    with tempfile.TemporaryDirectory(prefix="airlock-backup-") as work:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for root in cfg["paths"]:
                root = os.path.normpath(root)
                if not os.path.lexists(root):
                    manifest["paths"][root] = "absent"
                    continue
                manifest["paths"][root] = "dir" if os.path.isdir(root) and not os.path.islink(root) else "file"
                for path in walk(root):
                    arcname = path.lstrip("/")
                    src = path
                    if os.path.isfile(path) and not os.path.islink(path) and is_sqlite(path):
                        src = os.path.join(work, hashlib.sha1(path.encode()).hexdigest())
                        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db, sqlite3.connect(src) as out:
                            db.backup(out)
                        db.close()
                        out.close()
                    info = tar.gettarinfo(src, arcname)
                    st = os.lstat(path)  # owner, mode and times of the original, not the copy
                    info.uid, info.gid, info.mode, info.mtime = st.st_uid, st.st_gid, st.st_mode & 0o7777, st.st_mtime
                    info.uname = info.gname = ""
                    if info.isfile():
                        manifest["files"][arcname] = {"sha256": sha256_file(src), "mode": info.mode,
                                                      "uid": info.uid, "gid": info.gid, "size": info.size}
                        with open(src, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
            data = json.dumps(manifest, indent=1, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(data), 0o600, time.time()
            tar.addfile(info, io.BytesIO(data))
    digest = sha256_file(tmp)
    os.replace(tmp, final)
    with open(final + ".sha256", "w", encoding="ascii") as f:
        f.write(f"{digest}  {os.path.basename(final)}\n")
    os.chmod(final + ".sha256", 0o600)
    pruned = prune(cfg)
    uploaded = upload(cfg, final) if cfg["s3"].get("bucket") else None
    return {"archive": final, "sha256": digest, "files": len(manifest["files"]), "bytes": os.path.getsize(final),
            "paths": manifest["paths"], "pruned": pruned, "s3": uploaded, "seconds": round(time.monotonic() - started, 3)}


def prune(cfg, now=None):
    """Keep the newest retention_count archives, none older than retention_days; never the newest."""
    now = now or time.time()
    items = archives(cfg)
    removed = []
    for i, path in enumerate(items):
        newest_rank = len(items) - i  # 1 = newest
        if newest_rank == 1:
            continue
        too_many = newest_rank > cfg["retention_count"]
        too_old = now - os.path.getmtime(path) > cfg["retention_days"] * 86400
        if too_many or too_old:
            for p in (path, path + ".sha256"):
                if os.path.exists(p):
                    os.unlink(p)
            removed.append(os.path.basename(path))
    return removed


def upload(cfg, path):
    s3 = cfg["s3"]
    key = f"{s3.get('prefix', '').strip('/')}/{os.path.basename(path)}".lstrip("/")
    extra = {"ServerSideEncryption": s3.get("sse", "AES256")}
    if s3.get("sse") == "aws:kms" and s3.get("kms_key_id"):
        extra["SSEKMSKeyId"] = s3["kms_key_id"]
    try:
        import boto3  # pylint: disable=import-outside-toplevel
    except ImportError:
        boto3 = None
    if boto3 is None and not shutil.which("aws"):
        raise BackupError(f"S3 upload configured but neither boto3 nor the aws CLI is installed; the local archive {path} is kept")
    for name in (path, path + ".sha256"):
        k = key if name == path else key + ".sha256"
        try:
            if boto3 is not None:
                kwargs = {"region_name": s3.get("region")} if s3.get("region") else {}
                if s3.get("endpoint_url"):
                    kwargs["endpoint_url"] = s3["endpoint_url"]
                boto3.client("s3", **kwargs).upload_file(name, s3["bucket"], k, ExtraArgs=extra)
            else:
                argv = ["aws", "s3", "cp", name, f"s3://{s3['bucket']}/{k}", "--sse", extra["ServerSideEncryption"]]
                if s3.get("endpoint_url"):
                    argv += ["--endpoint-url", s3["endpoint_url"]]
                subprocess.run(argv, check=True, capture_output=True)
        except Exception as e:  # noqa: BLE001 (boto3, botocore and the aws CLI raise unrelated types)
            detail = e.stderr.decode(errors="replace").strip() if isinstance(e, subprocess.CalledProcessError) and e.stderr else e
            raise BackupError(f"S3 copy to s3://{s3['bucket']}/{k} failed: {detail}; the local archive {path} is kept") from e
    return f"s3://{s3['bucket']}/{key}"


def resolve(cfg, archive):
    if archive in (None, "", "latest"):
        items = archives(cfg)
        if not items:
            raise BackupError(f"no archive in {cfg['dir']}")
        return items[-1]
    path = archive if os.path.isabs(archive) else os.path.join(cfg["dir"], archive)
    if not os.path.isfile(path):
        raise BackupError(f"archive {archive!r} not found")
    return path


def safe_member(name):
    return not (name.startswith("/") or ".." in name.split("/"))


def verify(path):
    """Check the archive against its .sha256 and every member against the manifest."""
    side = path + ".sha256"
    if os.path.exists(side):
        want = open(side, encoding="ascii").read().split()[0]
        got = sha256_file(path)
        if got != want:
            raise BackupError(f"{path}: checksum {got} does not match {side}")
    with tarfile.open(path, "r:gz") as tar:
        manifest = json.load(tar.extractfile(MANIFEST))
        seen = set()
        for m in tar.getmembers():
            if m.name == MANIFEST:
                continue
            if not safe_member(m.name):
                raise BackupError(f"{path}: unsafe member name {m.name!r}")
            if m.isfile():
                h = hashlib.sha256()
                f = tar.extractfile(m)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                if manifest["files"].get(m.name, {}).get("sha256") != h.hexdigest():
                    raise BackupError(f"{path}: member {m.name} does not match the manifest")
                seen.add(m.name)
        missing = set(manifest["files"]) - seen
        if missing:
            raise BackupError(f"{path}: members missing: {sorted(missing)[:5]}")
    return manifest


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def do_restore(cfg, archive, root="/"):
    started = time.monotonic()
    path = resolve(cfg, archive)
    manifest = verify(path)
    restored = []
    with tarfile.open(path, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name != MANIFEST]
        for top, kind in manifest["paths"].items():
            if kind == "absent":
                continue
            target = os.path.join(root, top.lstrip("/"))
            remove(target)
            prefix = top.lstrip("/")
            mine = [m for m in members if m.name == prefix or m.name.startswith(prefix + "/")]
            kwargs = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
            # numeric owners: the archive keeps uid/gid, not names
            tar.extractall(root, members=mine, numeric_owner=True, **kwargs)  # noqa: S202 (names checked in verify)
            for m in mine:  # the "tar" filter clears setuid/setgid; put the archived mode back
                p = os.path.join(root, m.name)
                if not m.issym():
                    os.chmod(p, m.mode)
            restored.append(top)
    bad = [n for n, meta in manifest["files"].items() if sha256_file(os.path.join(root, n)) != meta["sha256"]]
    if bad:
        raise BackupError(f"restored files differ from the manifest: {bad[:5]}")
    return {"archive": path, "restored": restored, "files": len(manifest["files"]),
            "seconds": round(time.monotonic() - started, 3)}


def main(argv=None):
    p = argparse.ArgumentParser(description="airlock backups")
    p.add_argument("--config", default="/etc/airlock/backup.json")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("backup")
    ls = sub.add_parser("list")
    ls.add_argument("--json", action="store_true")
    for name in ("restore", "verify"):
        sp = sub.add_parser(name)
        sp.add_argument("--archive", default="latest")
        if name == "restore":
            sp.add_argument("--root", default="/", help="restore under this directory instead of /")
    a = p.parse_args(argv)
    try:
        cfg = load_config(a.config)
        if a.cmd == "backup":
            out = do_backup(cfg)
        elif a.cmd == "list":
            items = [{"name": os.path.basename(x), "bytes": os.path.getsize(x), "mtime": os.path.getmtime(x)} for x in archives(cfg)]
            if not a.json:
                for i in items:
                    print(f"{i['name']}  {i['bytes']} bytes")
                return 0
            out = items
        elif a.cmd == "verify":
            path = resolve(cfg, a.archive)
            out = {"archive": path, "files": len(verify(path)["files"]), "valid": True}
        else:
            out = do_restore(cfg, a.archive, a.root)
    except (BackupError, OSError, tarfile.TarError, sqlite3.Error, json.JSONDecodeError, KeyError) as e:
        print(f"airlock-backup: {a.cmd} failed: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
