#!/usr/bin/env python3
"""airlock-backup: encrypted backups of state and configuration with restic.

  airlock-backup [--config FILE] init       create the repositories that do not exist yet
  airlock-backup [--config FILE] backup     snapshot, retention (forget --prune), restic check
  airlock-backup [--config FILE] check      restic check of every repository
  airlock-backup [--config FILE] list [--json] [--repository NAME]   snapshots, newest last
  airlock-backup [--config FILE] restore [--snapshot latest|ID] [--repository NAME] [--root DIR]

The work is restic's (the distribution's package): encryption with the repository password
(the file named by password_file, root only), deduplication, retention, integrity checks and
the restore itself. This wrapper adds what restic does not know about this host:

- the configured paths that do not exist on this host are recorded as absent and skipped;
- SQLite databases (*.db, *.sqlite, *.sqlite3) are copied with SQLite's online backup API
  into stage_dir and that copy is backed up instead of the live file (and its -wal, -shm and
  -journal), so a running service never yields a torn database;
- every repository in the configuration gets the snapshot (the local one first, then S3 when
  configured), then retention, then ``restic check``; any failure makes the run exit 1;
- restore writes the configured paths only: restic restores into a private directory with one
  --include per configured path (and the SQLite stage), whatever else the snapshot holds, and
  --verify; then each configured path is replaced by its restored copy (a configured path the
  snapshot does not hold is left alone). A failed restore leaves the host as it was. The
  password file and this configuration, when under a restored path, keep their live content.

The configuration is JSON (the role writes it): paths, host, password_file, cache_dir,
stage_dir, repositories [{name, url}], keep {last, hourly, daily, weekly, monthly},
check_read_data_subset, restore_services. Python 3 standard library and restic only.
"""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
TAG = "airlock"


class BackupError(Exception):
    pass


def load_config(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    for key in ("paths", "host", "password_file", "repositories"):
        if not cfg.get(key):
            raise BackupError(f"{path}: {key} is missing")
    cfg.setdefault("cache_dir", "/var/cache/airlock-backup")
    cfg.setdefault("stage_dir", "/var/lib/airlock-backup/sqlite")
    cfg.setdefault("keep", {})
    cfg.setdefault("check_read_data_subset", "")
    for p in cfg["paths"]:
        if not p.startswith("/") or os.path.normpath(p) in ("/", "/."):
            raise BackupError(f"paths: {p!r} must be an absolute path other than /")
    if not any(int(v) > 0 for v in cfg["keep"].values()):
        raise BackupError("keep: at least one of last, hourly, daily, weekly, monthly must be >= 1")
    return cfg


def repository(cfg, name=None):
    repos = cfg["repositories"]
    if name is None:
        return repos[0]
    for repo in repos:
        if repo["name"] == name:
            return repo
    raise BackupError(f"no repository named {name!r} (configured: {', '.join(r['name'] for r in repos)})")


def restic(cfg, repo, *args, check=True):
    """Run restic on one repository; the password comes from the file, never the command line."""
    argv = ["restic", "--repo", repo["url"], "--password-file", cfg["password_file"],
            "--cache-dir", cfg["cache_dir"], *args]
    env = dict(os.environ)
    env.pop("RESTIC_PASSWORD", None)
    env.pop("RESTIC_PASSWORD_COMMAND", None)
    env.update(repo.get("env") or {})
    res = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if check and res.returncode != 0:
        detail = " | ".join(ln.strip() for ln in res.stderr.strip().splitlines()[-4:]) or f"exit {res.returncode}"
        raise BackupError(f"repository {repo['name']}: restic {args[0]} failed (exit {res.returncode}): {detail}")
    return res


def is_sqlite(path):
    if not path.endswith(SQLITE_SUFFIXES) or os.path.islink(path) or not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def walk_files(root):
    if os.path.isdir(root) and not os.path.islink(root):
        for dirpath, _dirnames, filenames in os.walk(root):
            for name in sorted(filenames):
                yield os.path.join(dirpath, name)
    else:
        yield root


def glob_escape(path):
    return "".join("\\" + c if c in "*?[]\\" else c for c in path)


def stage_sqlite(cfg, roots):
    """Consistent copies of the SQLite databases under roots, in stage_dir at their own path."""
    stage = cfg["stage_dir"]
    if os.path.lexists(stage):
        shutil.rmtree(stage)
    os.makedirs(stage, mode=0o700)
    staged = []
    for root in roots:
        for path in walk_files(root):
            if not is_sqlite(path):
                continue
            copy = stage + path
            os.makedirs(os.path.dirname(copy), mode=0o700, exist_ok=True)
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as src, sqlite3.connect(copy) as out:
                src.backup(out)
            src.close()
            out.close()
            st = os.lstat(path)
            os.chown(copy, st.st_uid, st.st_gid)
            os.chmod(copy, st.st_mode & 0o7777)
            os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
            staged.append(path)
    return staged


def do_init(cfg):
    created, existing = [], []
    for repo in cfg["repositories"]:
        res = restic(cfg, repo, "cat", "config", check=False)
        if res.returncode == 0:
            existing.append(repo["name"])
            continue
        if "wrong password" in res.stderr:
            raise BackupError(f"repository {repo['name']}: wrong password (the repository exists with another password)")
        restic(cfg, repo, "init")
        created.append(repo["name"])
    return {"created": created, "existing": existing}


def keep_args(cfg):
    args = []
    for name in ("last", "hourly", "daily", "weekly", "monthly"):
        n = int(cfg["keep"].get(name, 0) or 0)
        if n > 0:
            args += [f"--keep-{name}", str(n)]
    return args


def check_args(cfg):
    subset = cfg.get("check_read_data_subset") or ""
    return [f"--read-data-subset={subset}"] if subset else []


def json_lines(text, start):
    """The lines of restic's output that are JSON values starting with `start` (restic
    versions differ in what else they print); the rest is ignored."""
    found = []
    for line in text.splitlines():
        if line.startswith(start):
            try:
                found.append(json.loads(line))
            except ValueError:
                pass
    return found


def do_backup(cfg):
    started = time.monotonic()
    paths = {os.path.normpath(p): ("present" if os.path.lexists(p) else "absent") for p in cfg["paths"]}
    roots = [p for p, state in paths.items() if state == "present"]
    if not roots:
        raise BackupError("none of the configured paths exists on this host")
    staged = stage_sqlite(cfg, roots)
    targets = roots + ([cfg["stage_dir"]] if staged else [])
    out = {"paths": paths, "sqlite": staged, "repositories": {}}
    errors = []
    with tempfile.NamedTemporaryFile("w", prefix="airlock-backup-exclude-", suffix=".txt") as excl:
        for db in staged:
            for suffix in ("",) + SQLITE_SIDE_FILES:
                excl.write(glob_escape(db + suffix) + "\n")
        excl.flush()
        for repo in cfg["repositories"]:
            try:
                res = restic(cfg, repo, "backup", "--json", "--host", cfg["host"], "--tag", TAG,
                             "--exclude-file", excl.name, "--", *targets)
                summary = [s for s in json_lines(res.stdout, "{") if s.get("message_type") == "summary"]
                snap = summary[-1].get("snapshot_id", "") if summary else ""
                forget = restic(cfg, repo, "forget", "--json", "--host", cfg["host"], "--group-by", "host",
                                *keep_args(cfg), "--prune")
                groups = json_lines(forget.stdout, "[")
                removed = sum(len(g.get("remove") or []) for g in groups[0]) if groups else None
                restic(cfg, repo, "check", *check_args(cfg))
                out["repositories"][repo["name"]] = {"snapshot": snap[:8], "forgotten": removed, "check": "ok"}
            except BackupError as e:
                errors.append(str(e))
                out["repositories"][repo["name"]] = {"error": str(e)}
    if os.path.lexists(cfg["stage_dir"]):
        shutil.rmtree(cfg["stage_dir"])  # the copies are in the snapshot; no second clear copy stays behind
    out["seconds"] = round(time.monotonic() - started, 3)
    if errors:
        print(json.dumps(out, sort_keys=True))
        raise BackupError("; ".join(errors))
    return out


def do_check(cfg):
    for repo in cfg["repositories"]:
        restic(cfg, repo, "check", *check_args(cfg))
    return {"check": "ok", "repositories": [r["name"] for r in cfg["repositories"]]}


def snapshots(cfg, repo):
    res = restic(cfg, repo, "snapshots", "--json", "--host", cfg["host"])
    items = json.loads(res.stdout or "[]") or []
    return sorted(items, key=lambda s: s["time"])


def resolve(cfg, repo, wanted):
    items = snapshots(cfg, repo)
    if not items:
        raise BackupError(f"repository {repo['name']}: no snapshot of host {cfg['host']}")
    if wanted in (None, "", "latest"):
        return items[-1]
    found = [s for s in items if s["id"].startswith(wanted) or s.get("short_id") == wanted]
    if len(found) != 1:
        raise BackupError(f"repository {repo['name']}: snapshot {wanted!r} {'is ambiguous' if found else 'not found'}")
    return found[0]


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def count_files(path):
    return sum(1 for p in walk_files(path) if os.path.lexists(p)) if os.path.lexists(path) else 0


def place(staged, dest):
    """Put a restored tree in place: a rename on the same filesystem, else cp -a (owners, modes, times)."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    remove(dest)
    try:
        os.rename(staged, dest)
    except OSError:
        subprocess.run(["cp", "-a", "--no-target-directory", staged, dest], check=True, capture_output=True)


def do_restore(cfg, wanted, repo_name=None, root="/"):
    """Restore the configured paths of a snapshot, and nothing else.

    restic restores into a private directory first (one --include per configured path the
    snapshot holds, and the SQLite stage), with --verify; only when that succeeded is each
    configured path replaced by its restored copy. A failure before that leaves the host as it was.
    """
    started = time.monotonic()
    repo = repository(cfg, repo_name)
    snap = resolve(cfg, repo, wanted)
    in_snapshot = {os.path.normpath(p) for p in snap.get("paths") or []}
    configured = [os.path.normpath(p) for p in cfg["paths"]]
    # Only configured paths the snapshot holds; a configured path absent from it is left alone.
    chosen = [p for p in configured if p in in_snapshot]
    if not chosen:
        raise BackupError(f"snapshot {snap['short_id']} holds none of the configured paths")
    stage = os.path.normpath(cfg["stage_dir"])
    with_stage = stage in in_snapshot

    def rooted(p):
        return os.path.join(root, p.lstrip("/"))

    work_parent = rooted(os.path.dirname(stage))
    os.makedirs(work_parent, mode=0o700, exist_ok=True)
    work = tempfile.mkdtemp(prefix="restore-", dir=work_parent)
    try:
        includes = []
        for p in chosen + ([stage] if with_stage else []):
            includes += ["--include", glob_escape(p)]
        restic(cfg, repo, "restore", snap["id"], "--target", work, "--verify", *includes)
        missing = [p for p in chosen if not os.path.lexists(work + p)]
        if missing:
            raise BackupError(f"snapshot {snap['short_id']}: restic restored nothing for {', '.join(missing)}")
        # The backup's own password file and configuration stay as they are on the host (a
        # snapshot's copies may be older: a password changed since, other repositories).
        own = {}
        for f in (cfg["password_file"], cfg.get("_config_path", "")):
            live = rooted(f) if f else ""
            if live and os.path.isfile(live) and any(f.startswith(p + "/") for p in chosen):
                st = os.lstat(live)
                with open(live, "rb") as fh:
                    own[live] = (fh.read(), st)
        for p in chosen:
            place(work + p, rooted(p))
        for live, (data, st) in own.items():
            os.makedirs(os.path.dirname(live), exist_ok=True)
            fd = os.open(live, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chown(live, st.st_uid, st.st_gid)
            os.chmod(live, st.st_mode & 0o7777)
        databases = []
        if with_stage:
            for copy in walk_files(work + stage):
                if not os.path.isfile(copy):
                    continue
                original = copy[len(work + stage):]
                if not any(original == p or original.startswith(p + "/") for p in chosen):
                    continue  # a database outside the configured paths is never written
                dest = rooted(original)
                for suffix in SQLITE_SIDE_FILES:
                    remove(dest + suffix)
                st = os.lstat(copy)
                shutil.copy2(copy, dest)
                os.chown(dest, st.st_uid, st.st_gid)
                databases.append(original)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"snapshot": snap["short_id"], "repository": repo["name"], "time": snap["time"], "restored": chosen,
            "databases": databases, "files": sum(count_files(rooted(p)) for p in chosen),
            "seconds": round(time.monotonic() - started, 3)}


def main(argv=None):
    p = argparse.ArgumentParser(description="airlock backups (restic)")
    p.add_argument("--config", default="/etc/airlock/backup.json")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("init", "backup", "check"):
        sub.add_parser(name)
    ls = sub.add_parser("list")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--repository")
    rs = sub.add_parser("restore")
    rs.add_argument("--snapshot", default="latest")
    rs.add_argument("--repository", help="name of a configured repository (default: the first, local)")
    rs.add_argument("--root", default="/", help="restore under this directory instead of /")
    a = p.parse_args(argv)
    try:
        cfg = load_config(a.config)
        cfg["_config_path"] = os.path.abspath(a.config)
        if a.cmd == "init":
            out = do_init(cfg)
        elif a.cmd == "backup":
            out = do_backup(cfg)
        elif a.cmd == "check":
            out = do_check(cfg)
        elif a.cmd == "list":
            repo = repository(cfg, a.repository)
            items = [{"id": s["short_id"], "time": s["time"], "paths": s.get("paths", []), "repository": repo["name"]}
                     for s in snapshots(cfg, repo)]
            if not a.json:
                for i in items:
                    print(f"{i['repository']} {i['id']}  {i['time']}  {' '.join(i['paths'])}")
                return 0
            out = items
        else:
            out = do_restore(cfg, a.snapshot, a.repository, a.root)
    except (BackupError, OSError, sqlite3.Error, json.JSONDecodeError, KeyError, ValueError) as e:
        print(f"airlock-backup: {a.cmd} failed: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
