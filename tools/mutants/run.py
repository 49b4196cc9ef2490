#!/usr/bin/env python3
"""The mutation matrix: does each control's test fail when the control is removed?

For every mutant of tools/mutants/mutants.yml (or the ones chosen), on a converged Molecule
scenario: run its tests (the baseline: they must pass), apply the mutation in the named
container, run them again (they must fail: killed; passing, the mutant survived), restore
(the files saved before the mutation put back, then the restore command) and run them a
third time (they must pass again). Repo mutants do the same in a scratch worktree of HEAD,
with the tests run by pytest at its root, and are restored by git. Mutants of `real_lab`
run in the real OpenHands server's lab (tools/realserver; the lab of
tests/e2e/test_real_openhands.py), whose steps run against it as it is.

The tests run exactly as `molecule verify` runs them: the command and environment come
from Molecule's own testinfra verifier for the scenario (its inventory, its ansible.cfg),
with the node ids of the mutant in place of the whole tests directory.

    tools/mutants/run.py --list
    tools/mutants/run.py --up --down --doc docs/controls.md       # the whole matrix (make mutants)
    tools/mutants/run.py --fast                                   # the fast subset, scenario already up
    tools/mutants/run.py --scenario nginx_proxy --only proxy-ufw-opens-443
    tools/mutants/run.py --doc docs/controls.md --doc-only             # the document from the last results

--up creates, prepares and converges a scenario that is not converged; --down destroys, at
the end, the scenarios this run brought up (never one it found running). With
AIRLOCK_SERVER_TIER_LOCK set to a file, everything done to server_tier happens under an
exclusive flock of it (only one server_tier may run on a machine); AIRLOCK_REAL_LAB_LOCK
does the same for the real server's lab. Results merge into
reports/mutants.json (or --report); --doc regenerates docs/controls.md from them. The exit
status is 0 only when every mutant run was killed.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import matrix  # noqa: E402  (this directory)

ROOT = matrix.ROOT
BACKUP_DIR = "/var/tmp/airlock-mutant"
COMMAND_TIMEOUT = 600
TEST_TIMEOUT = 1800


def now() -> str:
    return time.strftime("%H:%M:%S")


def say(text: str) -> None:
    print(f"[{now()}] {text}", flush=True)


class Log:
    """One mutant's log: every command, its exit code and output."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = path.open("w")

    def write(self, text: str) -> None:
        self.fh.write(text if text.endswith("\n") else text + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def run(argv, log: Log, timeout=COMMAND_TIMEOUT, **kw) -> int:
    log.write(f"$ {' '.join(shlex.quote(str(a)) for a in argv)}")
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as exc:
        log.write(f"timed out after {timeout} s\n{exc.stdout or ''}{exc.stderr or ''}")
        return 124
    log.write(f"{res.stdout}{res.stderr}(exit {res.returncode})")
    return res.returncode


def junit_outcome(path: Path, seconds: float) -> matrix.Outcome:
    """The counts of a pytest junit XML file; a run that wrote none (collection crashed)
    is one error."""
    if not path.exists():
        return matrix.Outcome(errors=1, seconds=seconds, failures=["(no junit report: pytest did not run the tests)"])
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    out = matrix.Outcome(seconds=seconds)
    for suite in suites:
        for case in suite.iter("testcase"):
            kinds = {child.tag for child in case}
            name = case.get("name", "")
            if "failure" in kinds:
                out.failed += 1
                out.failures.append(name)
            elif "error" in kinds:
                out.errors += 1
                out.failures.append(name + " (error)")
            elif "skipped" in kinds:
                out.skipped += 1
            else:
                out.passed += 1
    return out


# ----------------------------------------------------------------------------- where mutants run
class Containers:
    """Mutations run in containers (docker exec), and files saved and put back there."""

    def shell(self, host: str, command: str, log: Log) -> int:
        return run(["docker", "exec", host, "bash", "-c", command], log)

    def backup(self, mutant: matrix.Mutant, log: Log) -> int:
        if not mutant.backup:
            return 0
        saved = f"{BACKUP_DIR}/{mutant.id}"
        files = " ".join(shlex.quote(f) for f in mutant.backup)
        return self.shell(mutant.host, f"set -e; rm -rf {saved}; mkdir -p {saved}; "
                                       f"for f in {files}; do cp -a --parents \"$f\" {saved}/; done", log)

    def put_back(self, mutant: matrix.Mutant, log: Log) -> int:
        if not mutant.backup:
            return 0
        saved = f"{BACKUP_DIR}/{mutant.id}"
        return self.shell(mutant.host, f"set -e; cp -a {saved}/. /; rm -rf {saved}", log)


class Scenario(Containers):
    """A Molecule scenario: its state, its containers, its tests run as `molecule verify` does."""

    def __init__(self, name: str):
        self.name = name
        self.directory = ROOT / "molecule" / name

    def config(self):
        from molecule.config import Config  # pylint: disable=import-outside-toplevel
        return Config(str(self.directory / "molecule.yml"),
                      args={"base_config": [str(ROOT / ".config" / "molecule" / "config.yml")]},
                      command_args={"subcommand": "verify"})

    def instances(self) -> list[str]:
        return [p["name"] for p in self.config().platforms.instances]

    def is_up(self) -> bool:
        if not self.config().state.converged:
            return False
        for name in self.instances():
            res = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name], capture_output=True, text=True)
            if res.stdout.strip() != "true":
                return False
        return True

    def molecule(self, action: str) -> int:
        say(f"molecule {action} -s {self.name}")
        return subprocess.run(["molecule", action, "-s", self.name], cwd=ROOT).returncode

    def up(self) -> bool:
        return all(self.molecule(action) == 0 for action in ("create", "prepare", "converge"))

    def down(self) -> None:
        self.molecule("destroy")

    def pytest(self, nodes, junit: Path, log: Log) -> int:
        verifier = self.config().verifier
        verifier._tests = list(nodes)  # pylint: disable=protected-access
        verifier.bake()
        command = list(verifier._testinfra_command) + ["-q", "-rfE", f"--junitxml={junit}"]  # pylint: disable=protected-access
        env = dict(verifier.env, PY_COLORS="0", ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
        return run(command, log, timeout=TEST_TIMEOUT, cwd=self.directory, env=env)


class RealLab(Containers):
    """The real OpenHands server's lab (tools/realserver, the lab tests/e2e/test_real_openhands.py
    builds: name realoh, 10.216.x): brought up by lab_up.yml and site.yml with the real server's
    variables; its tests are that file's steps, run against the lab as it is
    (AIRLOCK_REAL_OPENHANDS_LAB=existing), so a mutant names the steps its test needs first."""

    ENV = {"AIRLOCK_LAB_NAME": "realoh", "AIRLOCK_LAB_NET": "10.216",
           "AIRLOCK_LAB_HTTPS_PORT": "28443", "AIRLOCK_LAB_HTTP_PORT": "28080"}
    HOST = f"airlock-{ENV['AIRLOCK_LAB_NAME']}-openhands"
    LAB_TIMEOUT = 3600

    def env(self) -> dict:
        return dict(os.environ, **self.ENV, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
                    PY_COLORS="0")

    def is_up(self) -> bool:
        outer = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", self.HOST], capture_output=True, text=True)
        if outer.stdout.strip() != "true":
            return False
        app = subprocess.run(["docker", "exec", self.HOST, "docker", "inspect", "-f", "{{.State.Running}}", "openhands-app"],
                             capture_output=True, text=True)
        return app.stdout.strip() == "true"

    def step(self, *argv: str) -> bool:
        say(" ".join(argv))
        try:
            return subprocess.run(list(argv), cwd=ROOT, env=self.env(), timeout=self.LAB_TIMEOUT).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def up(self) -> bool:
        return (self.step("tools/realserver/build.sh", "--save", ".cache/images/openhands-pypi.tar")
                and self.step("ansible-playbook", "playbooks/lab_up.yml")
                and self.step("ansible-playbook", "site.yml", "-e", "@tools/realserver/lab-pypi.yml"))

    def down(self) -> None:
        self.step("ansible-playbook", "playbooks/lab_down.yml")

    def pytest(self, nodes, junit: Path, log: Log) -> int:
        env = dict(self.env(), AIRLOCK_REAL_OPENHANDS_LAB="existing")
        return run(["pytest", "-p", "no:cacheprovider", "-q", "-rfE", f"--junitxml={junit}", *nodes], log,
                   timeout=TEST_TIMEOUT, cwd=ROOT, env=env)


class Repo:
    """A scratch worktree of HEAD: repo mutants edit it, git puts it back."""

    def __init__(self):
        self.path: Path | None = None

    def ensure(self, log: Log) -> Path:
        if self.path is None:
            self.path = Path(tempfile.mkdtemp(prefix="airlock-mutants-")) / "repo"
            run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(self.path), "HEAD"], log)
            (self.path / ".venv").symlink_to(ROOT / ".venv")
        return self.path

    def pytest(self, nodes, junit: Path, log: Log) -> int:
        path = self.ensure(log)
        env = dict(os.environ, PY_COLORS="0", ANSIBLE_FORCE_COLOR="0", ANSIBLE_CONFIG=str(path / "ansible.cfg"))
        return run(["pytest", "-p", "no:cacheprovider", "-q", "-rfE", f"--junitxml={junit}", *nodes], log,
                   timeout=TEST_TIMEOUT, cwd=path, env=env)

    def shell(self, command: str, log: Log) -> int:
        return run(["bash", "-c", command], log, cwd=self.ensure(log))

    def reset(self, log: Log) -> int:
        path = str(self.ensure(log))
        return run(["git", "-C", path, "checkout", "--", "."], log) or run(["git", "-C", path, "clean", "-fdq", "-e", ".venv"], log)

    def remove(self) -> None:
        if self.path is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.path)], capture_output=True)
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()
            self.path = None


# ----------------------------------------------------------------------------- one mutant
def run_mutant(mutant: matrix.Mutant, where, log: Log, junit_dir: Path) -> dict:
    start = time.time()
    outcomes: dict[str, matrix.Outcome | None] = {"baseline": None, "mutant": None, "restored": None}

    def tests(phase: str) -> matrix.Outcome:
        junit = junit_dir / f"{mutant.id}-{phase}.xml"
        junit.unlink(missing_ok=True)
        log.write(f"\n=== {phase}: the tests")
        began = time.time()
        where.pytest(mutant.tests, junit, log)
        outcomes[phase] = junit_outcome(junit, time.time() - began)
        log.write(f"=== {phase}: {outcomes[phase].as_dict()}")
        return outcomes[phase]

    def shell(command: str) -> int:
        return where.shell(command, log) if isinstance(where, Repo) else where.shell(mutant.host, command, log)

    mutation_ok = restore_ok = False
    if tests("baseline").passes():
        log.write("\n=== mutation")
        saved = 0 if isinstance(where, Repo) else where.backup(mutant, log)
        mutation_ok = saved == 0 and shell(mutant.mutation) == 0
        time.sleep(mutant.settle)
        if mutation_ok:
            tests("mutant")
        log.write("\n=== restore")
        if isinstance(where, Repo):
            restore_ok = where.reset(log) == 0
        else:
            restore_ok = where.put_back(mutant, log) == 0 and (not mutant.restore or shell(mutant.restore) == 0)
        time.sleep(mutant.settle)
        if mutation_ok and restore_ok:
            tests("restored")
    result, why = matrix.verdict(outcomes["baseline"], mutation_ok, outcomes["mutant"], restore_ok, outcomes["restored"])
    log.write(f"\n=== verdict: {result}: {why}")
    return {"verdict": result, "why": why, "seconds": round(time.time() - start),
            **{phase: (o.as_dict() if o else None) for phase, o in outcomes.items()}}


# ----------------------------------------------------------------------------- the run
def git_commit() -> str:
    res = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=10"],
                         capture_output=True, text=True)
    return res.stdout.strip() or "unknown"


@contextlib.contextmanager
def scenario_lock(name: str):
    """An exclusive flock of $AIRLOCK_SERVER_TIER_LOCK around server_tier, and of
    $AIRLOCK_REAL_LAB_LOCK around the real server's lab, when they are set."""
    path = {"server_tier": os.environ.get("AIRLOCK_SERVER_TIER_LOCK"),
            matrix.REAL_LAB: os.environ.get("AIRLOCK_REAL_LAB_LOCK")}.get(name)
    if not path:
        yield
        return
    with open(path, "a") as fh:  # noqa: PTH123
        say(f"waiting for the {name} lock {path}")
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", default=[], help="only this scenario's mutants (repo: the repo's)")
    parser.add_argument("--only", action="append", default=[], help="only this mutant (by id)")
    parser.add_argument("--fast", action="store_true", help="only the fast subset (fast: true)")
    parser.add_argument("--up", action="store_true", help="create, prepare and converge scenarios that are not up")
    parser.add_argument("--down", action="store_true", help="destroy, at the end, the scenarios this run brought up")
    parser.add_argument("--report", default=str(ROOT / "reports" / "mutants.json"), help="the JSON report (merged)")
    parser.add_argument("--doc", help="regenerate this file (docs/controls.md) from the merged report")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--doc-only", action="store_true", help="regenerate --doc from the report, run nothing")
    args = parser.parse_args(argv)

    os.chdir(ROOT)
    mutants = matrix.load_mutants()
    controls = matrix.controls_table(matrix.SECURITY_MODEL.read_text())
    for mutant in mutants:
        matrix.match_control(mutant.control, [c for c, _ in controls])
    chosen = matrix.select(mutants, args.scenario, args.only, args.fast)
    if args.list:
        for m in chosen:
            print(f"{m.id:40} {m.scenario:13} {'fast ' if m.fast else ''}{matrix.normalize(m.control)[:70]}")
        return 0
    report_path = Path(args.report)
    if args.doc_only:
        if not args.doc:
            parser.error("--doc-only needs --doc")
        saved = json.loads(report_path.read_text()) if report_path.exists() else {}
        Path(args.doc).write_text(matrix.render_doc(controls, mutants, saved.get("results", {}), saved.get("full_run")))
        return 0
    if not chosen:
        print("no mutant chosen", file=sys.stderr)
        return 2

    report_path.parent.mkdir(parents=True, exist_ok=True)
    logs = ROOT / "reports" / "mutants"
    logs.mkdir(parents=True, exist_ok=True)
    old = json.loads(report_path.read_text()) if report_path.exists() else {}
    commit, started = git_commit(), time.time()
    results: dict[str, dict] = {}
    order = list(dict.fromkeys(m.scenario for m in chosen))
    repo = Repo()
    try:
        for name in order:
            group = [m for m in chosen if m.scenario == name]
            with scenario_lock(name):
                brought_up = False
                where = repo if name == matrix.REPO else RealLab() if name == matrix.REAL_LAB else Scenario(name)
                if not isinstance(where, Repo) and not where.is_up():
                    if args.up:
                        brought_up = True
                        if not where.up():
                            say(f"{name} did not converge: its mutants are errors")
                    else:
                        say(f"{name} is not up (converged and running): run with --up, or converge it first")
                try:
                    for mutant in group:
                        say(f"start   {mutant.id} ({name})")
                        log = Log(logs / f"{mutant.id}.log")
                        if not isinstance(where, Repo) and not where.is_up():
                            result = {"verdict": matrix.ERROR, "why": f"the scenario {name} is not up", "seconds": 0}
                        else:
                            result = run_mutant(mutant, where, log, logs)
                        log.close()
                        result.update(id=mutant.id, control=mutant.control, scenario=name, host=mutant.host,
                                      tests=list(mutant.tests), commit=commit,
                                      date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
                        results[mutant.id] = result
                        say(f"{result['verdict']:9}{mutant.id} ({result['seconds']} s){'' if result['verdict'] == matrix.KILLED else ': ' + result['why']}")
                finally:
                    if brought_up and args.down:
                        where.down()
    finally:
        repo.remove()

    seconds = round(time.time() - started)
    merged = {"results": matrix.merge_results(old.get("results", {}), results), "full_run": old.get("full_run")}
    whole = not (args.scenario or args.only or args.fast)
    if whole:
        merged["full_run"] = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                              "commit": commit, "seconds": seconds, "cpus": os.cpu_count()}
    report_path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    if args.doc:
        Path(args.doc).write_text(matrix.render_doc(controls, mutants, merged["results"], merged["full_run"]))

    print(f"\n{'MUTANT':40} {'VERDICT':9} {'SECONDS':>7}")
    for mutant_id, result in results.items():
        print(f"{mutant_id:40} {result['verdict']:9} {result['seconds']:>7}")
    killed = sum(1 for r in results.values() if r["verdict"] == matrix.KILLED)
    print(f"\n{killed} of {len(results)} mutants killed in {seconds} s (logs: reports/mutants/, report: {report_path})")
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
