"""The mutation matrix's pure logic (tools/mutants/matrix.py): the list of mutants, the
controls they name, the verdict of a run and the generated docs/controls.md. And the real
list: every mutant names a control of docs/security-model.md's table and tests that exist."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
matrix = load_module(ROOT / "tools" / "mutants" / "matrix.py", register=True)  # dataclasses look their module up

Outcome = matrix.Outcome

ONE = """
- id: a-mutant
  control: "login required"
  scenario: nginx_proxy
  host: nginx_proxy-proxy
  mutation: sed -i '/auth_basic/d' /etc/nginx/nginx.conf
  backup: /etc/nginx/nginx.conf
  restore: systemctl reload nginx
  fast: true
  tests: tests/test_proxy_tier.py::test_login
"""


# ----------------------------------------------------------------------------- parsing the list
def test_a_mutant_is_parsed_with_its_defaults():
    [m] = matrix.parse_mutants(ONE)
    assert m.id == "a-mutant" and m.scenario == "nginx_proxy" and m.host == "nginx_proxy-proxy"
    assert m.tests == ("tests/test_proxy_tier.py::test_login",) and m.backup == ("/etc/nginx/nginx.conf",)
    assert m.fast and m.settle == 0 and m.note == ""


@pytest.mark.parametrize("change,message", [
    (lambda t: t.replace("  host: nginx_proxy-proxy\n", ""), "names the host"),
    (lambda t: t.replace("  tests: tests/test_proxy_tier.py::test_login\n", ""), "missing tests"),
    (lambda t: t.replace("tests/test_proxy_tier.py::test_login", "tests/test_proxy_tier.py"), "pytest node ids"),
    (lambda t: t + "  colour: red\n", "unknown keys colour"),
    (lambda t: t.replace("id: a-mutant", "id: A_Mutant"), "lower-case"),
    (lambda t: t + t, "duplicate id"),
    (lambda t: t.replace("  backup: /etc/nginx/nginx.conf\n", "").replace("  restore: systemctl reload nginx\n", ""),
     "no way back"),
    (lambda t: t.replace("scenario: nginx_proxy", "scenario: repo").replace("  backup: /etc/nginx/nginx.conf\n", ""),
     "a repo mutant has no host"),
    (lambda t: "{}", "non-empty YAML list"),
])
def test_a_bad_list_is_refused_with_the_reason(change, message):
    with pytest.raises(matrix.MutantListError, match=message):
        matrix.parse_mutants(change(ONE))


def test_select_keeps_the_files_order_and_refuses_unknown_ids():
    mutants = matrix.parse_mutants(ONE + ONE.replace("a-mutant", "b-mutant").replace("fast: true", "fast: false")
                                   .replace("scenario: nginx_proxy", "scenario: auditd"))
    assert [m.id for m in matrix.select(mutants)] == ["a-mutant", "b-mutant"]
    assert [m.id for m in matrix.select(mutants, fast=True)] == ["a-mutant"]
    assert [m.id for m in matrix.select(mutants, scenarios=["auditd"])] == ["b-mutant"]
    with pytest.raises(matrix.MutantListError, match="no mutant named zzz"):
        matrix.select(mutants, ids=["zzz"])


def test_split_node():
    assert matrix.split_node("tests/t.py::test_x") == ("tests/t.py", "test_x", None)
    assert matrix.split_node("tests/t.py::test_x[-tls1-TLSv1]") == ("tests/t.py", "test_x", "-tls1-TLSv1")


# ----------------------------------------------------------------------------- the controls table
DOC = """# Model

## Controls, and the test that proves each

| control | proven by |
|---|---|
| login required: 401 without, 200 with | Molecule `nginx_proxy` verify |
| TLS 1.0/1.1 refused | `test_tls` |
| TLS 1.0/1.1 refused by the | `test_other` |

## Known limits
| not | a control |
"""


def test_the_controls_table_is_read_up_to_the_next_section():
    assert [c for c, _ in matrix.controls_table(DOC)] == [
        "login required: 401 without, 200 with", "TLS 1.0/1.1 refused", "TLS 1.0/1.1 refused by the"]


def test_a_control_is_named_by_a_prefix_that_matches_one_row_only():
    controls = [c for c, _ in matrix.controls_table(DOC)]
    assert matrix.match_control("login  required:", controls) == controls[0]
    with pytest.raises(matrix.MutantListError, match="2 controls start with"):
        matrix.match_control("TLS 1.0/1.1 refused", controls)
    with pytest.raises(matrix.MutantListError, match="0 controls"):
        matrix.match_control("no such control", controls)


# ----------------------------------------------------------------------------- the verdict
PASS, FAIL = Outcome(passed=2), Outcome(passed=1, failed=1)


@pytest.mark.parametrize("baseline,applied,mutant,restored_ok,restored,expected", [
    (PASS, True, FAIL, True, PASS, "killed"),
    (PASS, True, PASS, True, PASS, "survived"),
    (FAIL, True, FAIL, True, PASS, "error"),  # the baseline must pass
    (Outcome(passed=1, skipped=1), True, FAIL, True, PASS, "error"),  # a skipped test proves nothing
    (Outcome(), True, FAIL, True, PASS, "error"),  # nothing ran
    (None, False, None, False, None, "error"),
    (PASS, False, None, True, None, "error"),  # the mutation did not apply
    (PASS, True, Outcome(errors=1), True, PASS, "error"),  # a setup error is not a kill
    (PASS, True, Outcome(skipped=2), True, PASS, "error"),
    (PASS, True, FAIL, False, None, "error"),  # killed, but the restore did not apply
    (PASS, True, FAIL, True, FAIL, "error"),  # killed, but the tests do not pass again
    (PASS, True, PASS, True, FAIL, "error"),
])
def test_verdict(baseline, applied, mutant, restored_ok, restored, expected):
    assert matrix.verdict(baseline, applied, mutant, restored_ok, restored)[0] == expected


def test_a_failed_restore_still_says_what_the_mutant_did():
    assert matrix.verdict(PASS, True, FAIL, True, FAIL) == (
        "error", "killed, but the tests do not pass again after the restore")


def test_results_merge_by_mutant():
    old = {"a": {"verdict": "survived"}, "b": {"verdict": "killed"}}
    assert matrix.merge_results(old, {"a": {"verdict": "killed"}}) == {"a": {"verdict": "killed"}, "b": {"verdict": "killed"}}


# ----------------------------------------------------------------------------- the document
def test_the_document_lists_every_control_and_every_mutant():
    controls = matrix.controls_table(DOC)
    mutants = matrix.parse_mutants(ONE.replace('"login required"', '"login"') + ONE.replace("a-mutant", "b-mutant")
                                   .replace('"login required"', '"TLS 1.0/1.1 refused by"'))
    results = {"a-mutant": {"verdict": "killed", "why": "1 failed", "seconds": 12, "date": "2026-11-30 12:00 UTC",
                            "commit": "abc1234"},
               "b-mutant": {"verdict": "survived", "why": "passed", "seconds": 7, "date": "2026-11-30 12:01 UTC",
                            "commit": "abc1234"}}
    doc = matrix.render_doc(controls, mutants, results, {"date": "2026-11-30", "commit": "abc1234", "seconds": 600, "cpus": 2})
    assert doc.startswith("<!-- Generated by tools/mutants/run.py") and "make mutants" in doc.splitlines()[0]
    assert "10 min on 2 cores" in doc
    assert "**1 of 3 controls killed**" in doc and "2 of 3 have a mutant" in doc
    rows = {line.split(" | ")[0].strip("| "): line for line in doc.splitlines() if line.startswith("| ")}
    assert rows["login required: 401 without, 200 with"].endswith("| `a-mutant` | yes |")
    assert rows["TLS 1.0/1.1 refused"].endswith("| none yet | no mutant |")
    assert "a mutant survived" in rows["TLS 1.0/1.1 refused by the"]
    assert "| `b-mutant` |" in doc and "| **no** | survived: passed | 7 |" in doc
    assert "| yes | killed | 12 | 2026-11-30 12:00 UTC `abc1234` |" in doc


def test_a_pipe_in_a_mutation_does_not_break_the_table():
    controls = matrix.controls_table(DOC)
    mutants = matrix.parse_mutants(ONE.replace("mutation: sed", "mutation: echo x | sed").replace('"login required"', '"login"'))
    line = next(line for line in matrix.render_doc(controls, mutants, {}).splitlines() if line.startswith("| `a-mutant`"))
    assert "echo x \\| sed" in line and len(re.findall(r"(?<!\\)\|", line)) == 10


# ----------------------------------------------------------------------------- the real list
MUTANTS = matrix.load_mutants()
CONTROLS = [c for c, _ in matrix.controls_table(matrix.SECURITY_MODEL.read_text())]


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.id)
def test_every_mutant_names_one_control_of_the_security_model(mutant):
    matrix.match_control(mutant.control, CONTROLS)


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.id)
def test_every_test_a_mutant_names_exists(mutant):
    for node in mutant.tests:
        path = matrix.test_path(mutant, node)
        assert path.is_file(), f"{mutant.id}: {node}: no file {path.relative_to(ROOT)}"
        func = matrix.split_node(node)[1]
        assert re.search(rf"^def {re.escape(func)}\(", path.read_text(), re.M), f"{mutant.id}: {node}: no test {func}"


@pytest.mark.parametrize("mutant", [m for m in MUTANTS if m.scenario == matrix.REAL_LAB], ids=lambda m: m.id)
def test_every_real_lab_mutant_runs_in_one_of_the_real_labs_containers(mutant):
    """The real server's lab is the lab inventory's hosts under the lab name realoh (the
    name tests/e2e/test_real_openhands.py gives its own lab)."""
    hosts = (ROOT / "inventories" / "lab" / "hosts.yml").read_text()
    suffixes = re.findall(r'ansible_host: "\{\{ lab_prefix \}\}-([a-z]+)"', hosts)
    assert "openhands" in suffixes, suffixes
    assert mutant.host in {f"airlock-realoh-{s}" for s in suffixes}, f"{mutant.id}: {mutant.host} is not a real lab container"


def test_the_runners_real_lab_is_the_one_the_real_server_test_builds():
    """tools/mutants/run.py brings up and probes the same lab (name, network, ports) that
    tests/e2e/test_real_openhands.py builds when it runs on its own."""
    source = (ROOT / "tests" / "e2e" / "test_real_openhands.py").read_text()
    built = [ast.literal_eval(node.orelse[0].value) for node in ast.parse(source).body
             if isinstance(node, ast.If) and ast.unparse(node.test) == "EXISTING"]
    assert len(built) == 1 and built[0]["AIRLOCK_LAB_NAME"] == "realoh", built
    run = load_module(ROOT / "tools" / "mutants" / "run.py", "mutants_run")
    assert run.RealLab.ENV == built[0]
    assert run.RealLab.HOST == "airlock-realoh-openhands"


@pytest.mark.parametrize("mutant", [m for m in MUTANTS if m.scenario not in (matrix.REPO, matrix.REAL_LAB)],
                         ids=lambda m: m.id)
def test_every_scenario_mutant_runs_in_one_of_its_scenarios_containers(mutant):
    molecule_yml = ROOT / "molecule" / mutant.scenario / "molecule.yml"
    assert molecule_yml.is_file(), f"{mutant.id}: no scenario {mutant.scenario}"
    names = re.findall(r"^\s+- name: (\S+)$", molecule_yml.read_text(), re.M)
    default = f"airlock-{mutant.scenario}"  # the base config's platform, when the scenario names none
    assert mutant.host in names or mutant.host == default, f"{mutant.id}: {mutant.host} is not a container of {mutant.scenario}"


def test_the_fast_subset_runs_on_nginx_proxy_only():
    fast = [m for m in MUTANTS if m.fast]
    assert fast and {m.scenario for m in fast} == {"nginx_proxy"}
    assert len(fast) <= 5, "the fast subset runs in every `make test`: keep it to a few minutes"


def test_the_generated_document_is_current_with_the_list():
    """docs/controls.md names every mutant of the list (regenerate it after changing the list)."""
    doc = (ROOT / "docs" / "controls.md").read_text()
    missing = [m.id for m in MUTANTS if f"| `{m.id}` |" not in doc]
    assert not missing, f"docs/controls.md lacks {missing}: run tools/mutants/run.py --doc docs/controls.md"


# ----------------------------------------------------------------------------- the runner's reading of pytest
def test_the_junit_report_is_counted_and_a_missing_one_is_an_error(tmp_path):
    run = load_module(ROOT / "tools" / "mutants" / "run.py", "mutants_run")
    junit = tmp_path / "junit.xml"
    junit.write_text("""<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="4">
      <testcase classname="t" name="test_a"/>
      <testcase classname="t" name="test_b[x]"><failure message="assert"/></testcase>
      <testcase classname="t" name="test_c"><error message="fixture"/></testcase>
      <testcase classname="t" name="test_d"><skipped message="no"/></testcase>
    </testsuite></testsuites>""")
    out = run.junit_outcome(junit, 3.0)
    assert (out.passed, out.failed, out.errors, out.skipped) == (1, 1, 1, 1)
    assert out.failures == ["test_b[x]", "test_c (error)"] and not out.passes()
    missing = run.junit_outcome(tmp_path / "none.xml", 1.0)
    assert missing.errors == 1 and not missing.passes()
