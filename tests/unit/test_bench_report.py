"""The benchmark's report (tools/bench/report.py and its template performance.md.j2), rendered
from a small sample result (tests/unit/data/bench-sample.json: the raw results
tools/bench/measure.py writes first, with its own figures() and report_facts() applied as a
run applies them). The report states no figure of its own: each number in it comes from the
result, and the template's static text holds no digit but those of names."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tools" / "bench"
SAMPLE = Path(__file__).resolve().parent / "data" / "bench-sample.json"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # measure.py imports report by name, as it does when run
    spec.loader.exec_module(module)
    return module


report = _load("report")
measure = _load("measure")

# Names in the templates' static text that carry digits and are not figures: percentiles, a man
# page section, a protocol, programs, a file, and the recap a no-change rerun must print.
NAMES = ("p50", "p99", "crypt(3)", "HTTP/1.1", "fail2ban", "ulogd2", "performance.md.j2", "changed=0")
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?")


def result(mutate=None) -> dict:
    res = json.loads(SAMPLE.read_text())
    if mutate:
        mutate(res)
    res["figures"] = measure.figures(res)
    res["report"] = measure.report_facts(res)
    return json.loads(json.dumps(res))  # what the report reads: the JSON, not Python objects


def rows(res: dict) -> dict:
    return {r["figure"]: r for r in res["figures"]}


def test_a_measured_figure_is_its_row():
    res = result()
    r = rows(res)[measure.EGRESS_FIGURE]
    assert (r["n"], r["median"], r["min"], r["max"], r["met"]) == (2, pytest.approx(1.295), 1.17, 1.42, True)
    assert f"| {measure.EGRESS_FIGURE} | 1.29 s | 1.17-1.42 s | 2 | <= 10 | yes |" in report.render(res)


def test_every_figure_has_a_row_with_its_median_and_spread():
    res = result()
    md = report.render(res)
    assert report.table(res["figures"]) in md
    for r in res["figures"]:
        d, u = r["digits"], r["unit"]
        line = next(x for x in md.splitlines() if x.startswith(f"| {r['figure'].replace('|', '/')} |"))
        assert f"| {r['median']:.{d}f} {u} | {r['min']:.{d}f}-{r['max']:.{d}f} {u} | {r['n']} | {r['target']} |" in line


def test_a_missed_target_says_no_and_why():
    res = result()
    assert rows(res)["proxied / direct throughput"]["met"] is False
    md = report.render(res)
    assert "| proxied / direct throughput | 0.799 x | 0.782-0.816 x | 2 | >= 0.80 | **no** |" in md
    assert "**Proxied / direct throughput (0.799x, target >= 0.80).**" in md
    text = " ".join(md.split())
    assert "About 99% of the proxy's CPU per request is the password check" in text  # 4.067 of 4.112 ms


def test_a_figure_not_measured_shows_its_reason():
    why = "positive control failed: the router does not reach the decoy's listener on 10.217.12.20:24300"

    def no_decoy(res):
        res["alerts"]["egress"] = []
        res["alerts"]["egress_skipped"] = why

    res = result(no_decoy)
    r = rows(res)[measure.EGRESS_FIGURE]
    assert r["n"] == 0 and r["median"] is None and r["met"] is None and r["not_measured"] == why
    assert measure.EGRESS_LOG_FIGURE not in rows(res)
    md = report.render(res)
    assert f"| {measure.EGRESS_FIGURE} | not measured | - | 0 | <= 10 | not measured: {why} |" in md
    assert f"**{measure.EGRESS_FIGURE}: not measured in this run.** {why}." in md


def test_a_smoke_run_on_a_reused_lab():
    def smoke(res):
        res.update(smoke=True, fresh=False)
        res["converge"]["converge"] = []
        res["converge"]["runs"] = [x for x in res["converge"]["runs"] if x["phase"] != "converge"]

    res = result(smoke)
    md = report.render(res)
    assert "Run: smoke (one short repetition; not for publication)" in md and "(reused)" in md
    assert ("| first converge of site.yml (fresh lab) | not measured | - | 0 | - | not measured: smoke run on a "
            "running lab: no fresh lab was built |") in md
    line = next(x for x in md.splitlines() if "module invocations" in x)
    assert "(tasks x hosts, loop items counted one by one)." in line, line


def test_the_templates_static_text_states_no_figure():
    """Outside its Jinja expressions and tags, no template holds a number: a word with a digit
    is one of a few names (percentiles, a protocol, a man page section)."""
    for template in sorted(BENCH.glob("*.j2")):
        static = JINJA.sub(" ", template.read_text())
        for name in NAMES:
            static = static.replace(name, " ")
        words = sorted({w for w in static.split() if re.search(r"\d", w)})
        assert not words, f"{template.name}: figures in the static text: {words}"


def _numbers(value, out: set) -> set:
    """Every way the report may print the numbers of a JSON value: fixed digits (0-3, signed
    too) for numbers, and the numbers inside strings (names, URLs, versions, dates)."""
    if isinstance(value, dict):
        for v in value.values():
            _numbers(v, out)
    elif isinstance(value, list):
        for v in value:
            _numbers(v, out)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, (int, float)):
        out.add(str(value))
        for d in range(4):
            out.update({f"{value:.{d}f}", f"{value:+.{d}f}"})
        if isinstance(value, float) and value < 1:  # a fraction of a second printed in ms
            out.add(f"{value * 1000:.0f}")
    elif isinstance(value, str):
        out.update(NUMBER.findall(value))
    return out


@pytest.mark.parametrize("variant", ["full", "not measured"])
def test_every_number_in_the_report_comes_from_the_result(variant):
    res = result(None if variant == "full" else lambda r: r["alerts"].update(egress=[], egress_skipped="no alert"))
    md = report.render(res)
    for name in NAMES:
        md = md.replace(name, " ")
    allowed = _numbers(res, set())
    stray = sorted({n for n in NUMBER.findall(md) if n not in allowed})
    assert not stray, f"numbers in the report that are not in the result: {stray}"
