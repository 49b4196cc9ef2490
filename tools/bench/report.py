#!/usr/bin/env python3
"""airlock benchmark, the reporting half: a result JSON (tools/bench/measure.py) rendered to
Markdown through the template beside this file (performance.md.j2).

    tools/bench/report.py reports/bench.json                      -> docs/performance.md
    tools/bench/report.py reports/bench-smoke.json --out FILE

The template formats numbers it finds in the JSON and states no figure of its own
(tests/unit/test_bench_report.py checks both), so the document says nothing the run did not
measure. The renderer computes nothing: derived numbers are the measuring program's
(`report` in the JSON).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jinja2

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TEMPLATE = "performance.md.j2"


def num(value: float | None, digits: int = 2, sign: bool = False) -> str:
    """A number as the report prints it: fixed digits, "-" when there is none."""
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def cell(value: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "/").replace("\n", " ")


def met(r: dict) -> str:
    if r.get("not_measured"):
        return "not measured: " + cell(r["not_measured"])
    if r.get("met") is None:
        return "-"
    return "yes" if r["met"] else "**no**"


def table(rows: list[dict]) -> str:
    """The figures table (also what measure.py prints at the end of a run)."""
    return environment().get_template("table.md.j2").render(rows=rows).rstrip("\n")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             autoescape=False)  # Markdown, not HTML
    env.filters.update(num=num, cell=cell, met=met)
    return env


def render(result: dict) -> str:
    return environment().get_template(TEMPLATE).render(res=result, m=result["machine"], rows=result["figures"],
                                                       r=result["report"])


def write(json_path: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(json.loads(Path(json_path).read_text())))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result", help="a result JSON written by tools/bench/measure.py")
    ap.add_argument("--out", default=str(ROOT / "docs" / "performance.md"), help="default: docs/performance.md")
    args = ap.parse_args()
    write(Path(args.result), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
