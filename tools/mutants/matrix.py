"""The mutation matrix's pure logic: the list of mutants (tools/mutants/mutants.yml), the
controls table of docs/security-model.md, the verdict of one mutant's run, the merged
report and the generated docs/controls.md. No Docker, no Molecule, no subprocess: the
runner (tools/mutants/run.py) does the side effects and tests/unit/test_mutants.py tests
this module.

A mutant removes or weakens one control on a converged Molecule scenario (a command run in
one of its containers) or in a scratch copy of the repository (a command run at its root,
for controls proven by tests outside Molecule). Its tests are run three times: on the
intact control (they must pass: the baseline), on the mutant (they must fail: the mutant
is killed; if they pass it survived) and after the restore (they must pass again).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MUTANTS_FILE = ROOT / "tools" / "mutants" / "mutants.yml"
SECURITY_MODEL = ROOT / "docs" / "security-model.md"
CONTROLS_HEADING = "## Controls, and the test that proves each"
REPO = "repo"  # the scenario name of mutants applied to a scratch copy of the repository
REAL_LAB = "real_lab"  # the real OpenHands server's lab (tools/realserver); tests from the repository

REQUIRED = {"id", "control", "scenario", "mutation", "tests"}
OPTIONAL = {"host", "backup", "restore", "fast", "settle", "note"}

KILLED, SURVIVED, ERROR = "killed", "survived", "error"


class MutantListError(ValueError):
    """tools/mutants/mutants.yml is not a valid list of mutants."""


@dataclass(frozen=True)
class Mutant:
    id: str
    control: str  # a prefix of one control's text in docs/security-model.md's table
    scenario: str  # a Molecule scenario, "real_lab" or "repo"
    mutation: str  # shell, run in `host` (a scenario's container) or at the scratch copy's root
    tests: tuple[str, ...]  # pytest node ids: relative to the scenario directory, or to the repository
    host: str | None = None
    backup: tuple[str, ...] = ()  # files saved before the mutation and put back before `restore`
    restore: str | None = None  # shell, run where the mutation ran, after the backups are put back
    fast: bool = False  # part of the fast subset the test command runs
    settle: float = 0  # seconds to wait after the mutation and after the restore
    note: str = ""


@dataclass
class Outcome:
    """What one pytest run of a mutant's tests reported (junit counts)."""
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)  # node names that failed or errored

    def passes(self) -> bool:
        """Every test ran and passed (and at least one ran)."""
        return self.passed > 0 and self.failed == 0 and self.errors == 0 and self.skipped == 0

    def as_dict(self) -> dict:
        return {"passed": self.passed, "failed": self.failed, "errors": self.errors, "skipped": self.skipped,
                "seconds": round(self.seconds, 1), "failures": list(self.failures)}


# ----------------------------------------------------------------------------- the list
def parse_mutants(text: str) -> list[Mutant]:
    """The mutants of a YAML list; MutantListError names the first problem found."""
    data = yaml.safe_load(text)
    if not isinstance(data, list) or not data:
        raise MutantListError("the mutants file must be a non-empty YAML list")
    mutants, seen = [], set()
    for index, item in enumerate(data):
        where = f"mutant #{index + 1}"
        if not isinstance(item, dict):
            raise MutantListError(f"{where}: not a mapping")
        where = f"mutant {item.get('id', '#' + str(index + 1))}"
        missing = sorted(REQUIRED - item.keys())
        unknown = sorted(item.keys() - REQUIRED - OPTIONAL)
        if missing:
            raise MutantListError(f"{where}: missing {', '.join(missing)}")
        if unknown:
            raise MutantListError(f"{where}: unknown keys {', '.join(unknown)}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", str(item["id"])):
            raise MutantListError(f"{where}: the id must be lower-case letters, digits and dashes")
        if item["id"] in seen:
            raise MutantListError(f"{where}: duplicate id")
        seen.add(item["id"])
        for key in ("control", "scenario", "mutation"):
            if not isinstance(item[key], str) or not item[key].strip():
                raise MutantListError(f"{where}: {key} must be a non-empty string")
        tests = item["tests"]
        if isinstance(tests, str):
            tests = [tests]
        if not tests or not all(isinstance(t, str) and "::" in t for t in tests):
            raise MutantListError(f"{where}: tests must be pytest node ids (file.py::test_name)")
        backup = item.get("backup") or []
        if isinstance(backup, str):
            backup = [backup]
        if item["scenario"] == REPO:
            if item.get("host") or backup:
                raise MutantListError(f"{where}: a repo mutant has no host and no backup (the scratch copy is reset)")
        else:
            if not item.get("host"):
                raise MutantListError(f"{where}: a scenario mutant names the host (container) it mutates")
            if not backup and not item.get("restore"):
                raise MutantListError(f"{where}: no way back: give backup files, a restore command, or both")
        mutants.append(Mutant(
            id=item["id"], control=" ".join(item["control"].split()), scenario=item["scenario"],
            mutation=item["mutation"].strip(), tests=tuple(tests), host=item.get("host"), backup=tuple(backup),
            restore=(item.get("restore") or "").strip() or None, fast=bool(item.get("fast", False)),
            settle=float(item.get("settle", 0)), note=" ".join(str(item.get("note", "")).split())))
    return mutants


def load_mutants(path: Path = MUTANTS_FILE) -> list[Mutant]:
    return parse_mutants(Path(path).read_text())


def select(mutants: list[Mutant], scenarios=(), ids=(), fast=False) -> list[Mutant]:
    """The mutants to run, in the file's order."""
    unknown = set(ids) - {m.id for m in mutants}
    if unknown:
        raise MutantListError(f"no mutant named {', '.join(sorted(unknown))}")
    return [m for m in mutants
            if (not scenarios or m.scenario in scenarios) and (not ids or m.id in ids) and (not fast or m.fast)]


def split_node(node: str) -> tuple[str, str, str | None]:
    """(file, test function, parameter id or None) of a pytest node id."""
    path, _, name = node.partition("::")
    func, _, param = name.partition("[")
    return path, func, (param[:-1] if param.endswith("]") else None) if param else None


def test_path(mutant: Mutant, node: str, root: Path = ROOT) -> Path:
    """Where the file a node id names lives: under the scenario's directory (Molecule runs
    its tests from there), or under the repository for a repo mutant."""
    path = split_node(node)[0]
    return root / path if mutant.scenario in (REPO, REAL_LAB) else root / "molecule" / mutant.scenario / path


# ----------------------------------------------------------------------------- the controls
def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def controls_table(doc: str) -> list[tuple[str, str]]:
    """(control, proven by) of every row of the security model's controls table."""
    if CONTROLS_HEADING not in doc:
        raise ValueError("the security model has no controls table")
    table = doc.split(CONTROLS_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("|")]
    out = []
    for line in rows[2:]:  # the header and the |---| line
        cells = _cells(line)
        out.append((cells[0], cells[1] if len(cells) > 1 else ""))
    return out


def normalize(text: str) -> str:
    return " ".join(text.split())


def match_control(prefix: str, controls: list[str]) -> str:
    """The one control whose text starts with `prefix` (whitespace-insensitive)."""
    found = [c for c in controls if normalize(c).startswith(normalize(prefix))]
    if len(found) != 1:
        raise MutantListError(f"{len(found)} controls start with {prefix!r} (one expected)")
    return found[0]


# ----------------------------------------------------------------------------- the verdict
def verdict(baseline: Outcome | None, mutation_ok: bool, mutant: Outcome | None,
            restore_ok: bool, restored: Outcome | None) -> tuple[str, str]:
    """(killed | survived | error, why) of one mutant's run.

    killed: the tests passed on the intact control, failed (an assertion, not only a setup
    error) on the mutant, and passed again after the restore. survived: they passed on the
    mutant. error: anything that makes the run prove nothing: the baseline did not pass,
    the mutation or the restore did not apply, the mutant's tests only errored or skipped,
    or the tests did not pass again after the restore."""
    if baseline is None or not baseline.passes():
        return ERROR, "the tests do not pass on the intact control (baseline)"
    if not mutation_ok:
        return ERROR, "the mutation did not apply"
    if mutant is None:
        return ERROR, "the tests did not run on the mutant"
    if mutant.passes():
        outcome, why = SURVIVED, "the tests passed with the control removed"
    elif mutant.failed > 0:
        outcome, why = KILLED, f"{mutant.failed} failed on the mutant"
    else:
        return ERROR, "the tests errored or skipped on the mutant instead of failing"
    if not restore_ok:
        return ERROR, f"{outcome}, but the restore did not apply"
    if restored is None or not restored.passes():
        return ERROR, f"{outcome}, but the tests do not pass again after the restore"
    return outcome, why


# ----------------------------------------------------------------------------- the report
def merge_results(old: dict, new: dict) -> dict:
    """Results by mutant id: this run's replace the same mutants' earlier ones, the others
    are kept (each result carries its own date and commit)."""
    merged = dict(old)
    merged.update(new)
    return merged


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _short(text: str, limit: int) -> str:
    text = normalize(text)
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _code(text: str) -> str:
    text = normalize(text).replace("`", "'")
    return f"`{_md(text)}`"


def render_doc(controls: list[tuple[str, str]], mutants: list[Mutant], results: dict,
               full_run: dict | None = None) -> str:
    """docs/controls.md: every control of the security model with its mutants and whether
    each was killed, then every mutant in detail."""
    by_control: dict[str, list[Mutant]] = {}
    for mutant in mutants:
        by_control.setdefault(match_control(mutant.control, [c for c, _ in controls]), []).append(mutant)
    killed_controls = 0
    lines = [
        "<!-- Generated by tools/mutants/run.py from tools/mutants/mutants.yml and the last run's results;"
        " do not edit. Regenerate: `make mutants` (the whole matrix), or"
        " `tools/mutants/run.py --up --doc docs/controls.md [--scenario NAME] [--only ID]`"
        " (a part of it; the other rows keep their last result). -->",
        "# Controls and the mutants that prove their tests",
        "",
        "Each row of the controls table in [security-model.md](security-model.md) names the tests that prove",
        "the control. A *mutant* removes or weakens that control on a converged Molecule scenario, in the",
        "real OpenHands server's lab (`real_lab`), or in a scratch copy of the repository (for controls",
        "proven outside Molecule), and the named tests are run",
        "three times: on the intact control (they must pass), on the mutant (they must fail: the mutant is",
        "**killed**; if they pass, it **survived**, and the test does not prove the control), and after the",
        "restore (they must pass again). Anything else is an **error**: the run proved nothing.",
        "The mutants are listed in `tools/mutants/mutants.yml`; the runner is `tools/mutants/run.py`; the",
        "test command (`make test`) runs the fast subset (`fast: true`) on the `nginx_proxy` scenario it",
        "has just verified.",
        "",
    ]
    if full_run:
        lines += [f"Last whole-matrix run (`make mutants`): {full_run.get('date', '?')}, commit "
                  f"`{full_run.get('commit', '?')}`, {full_run.get('seconds', 0) / 60:.0f} min on "
                  f"{full_run.get('cpus', '?')} cores, scenarios brought up and down included."
                  + (f" {full_run['note']}" if full_run.get("note") else ""), ""]
    summary_at = len(lines)
    lines += ["## By control", "", "| control | mutants | killed |", "|---|---|---|"]
    for control, _ in controls:
        ms = by_control.get(control, [])
        if not ms:
            lines.append(f"| {_md(_short(control, 160))} | none yet | no mutant |")
            continue
        verdicts = [results.get(m.id, {}).get("verdict", "not run") for m in ms]
        if all(v == KILLED for v in verdicts):
            killed_controls += 1
            mark = "yes"
        elif SURVIVED in verdicts:
            mark = "**NO: a mutant survived**"
        else:
            others = ", ".join(f"{verdicts.count(v)} {v}" for v in sorted(set(verdicts) - {KILLED}))
            mark = f"not proven: {verdicts.count(KILLED)} of {len(verdicts)} killed, {others}"
        lines.append(f"| {_md(_short(control, 160))} | {', '.join(f'`{m.id}`' for m in ms)} | {mark} |")
    total = len(controls)
    covered = len(by_control)
    counts = {v: sum(1 for m in mutants if results.get(m.id, {}).get("verdict") == v) for v in (KILLED, SURVIVED, ERROR)}
    not_run = len(mutants) - sum(counts.values())
    summary = [f"**{killed_controls} of {total} controls killed** (every mutant of the control killed); "
               f"{covered} of {total} have a mutant. Mutants: {counts[KILLED]} killed, {counts[SURVIVED]} survived, "
               f"{counts[ERROR]} error, {not_run} not run, of {len(mutants)}.", ""]
    per_scenario: dict[str, list[float]] = {}
    for mutant in mutants:
        if mutant.id in results:
            per_scenario.setdefault(mutant.scenario, []).append(float(results[mutant.id].get("seconds", 0)))
    if per_scenario:
        summary += ["Time of the last results, by scenario (the mutants' own runs: three test runs each, the mutation "
                    "and the restore; bringing a scenario up and down is extra): "
                    + ", ".join(f"{name} {sum(secs) / 60:.1f} min ({len(secs)} mutants)" for name, secs in per_scenario.items())
                    + ".", ""]
    lines[summary_at:summary_at] = summary
    lines += ["", "## By mutant", "",
              "| mutant | control | where | mutation | tests | killed | verdict | seconds | run |",
              "|---|---|---|---|---|---|---|---|---|"]
    for mutant in mutants:
        res = results.get(mutant.id, {})
        v = res.get("verdict", "not run")
        killed = {KILLED: "yes", SURVIVED: "**no**"}.get(v, "-")
        where = REPO if mutant.scenario == REPO else f"{mutant.scenario} / {mutant.host}"
        tests = "<br>".join(_code(t) for t in mutant.tests)
        verdict_text = v if v in (KILLED, "not run") else f"{v}: {res.get('why', '')}"
        run = f"{res.get('date', '')} `{res.get('commit', '')}`" if res else ""
        lines.append(f"| `{mutant.id}` | {_md(_short(mutant.control, 70))} | {where} | {_code(_short(mutant.mutation, 200))} "
                     f"| {tests} | {killed} | {_md(verdict_text)} | {res.get('seconds', '')} | {run} |")
    return "\n".join(lines) + "\n"
