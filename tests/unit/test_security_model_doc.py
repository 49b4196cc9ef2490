"""docs/security-model.md names, for every control, the tests that prove it: each test it
names must exist, so the table cannot drift from the suite."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "security-model.md").read_text()
SOURCES = [p for p in ROOT.glob("**/test*.py") if ".venv" not in p.parts and ".cache" not in p.parts]


def defined_tests() -> dict[str, set[str]]:
    """test function names per file name (test_*.py)."""
    found: dict[str, set[str]] = {}
    for path in SOURCES:
        found.setdefault(path.name, set()).update(re.findall(r"^def (test_\w+)", path.read_text(), re.M))
    return found


def named_tests() -> list[tuple[str | None, str]]:
    """(file name or None, test name) for every `file.py::test_x` and bare `test_x` the
    controls table names."""
    table = DOC.split("## Controls, and the test that proves each", 1)[1].split("\n## ", 1)[0]
    named = []
    for cell in re.findall(r"`([^`]+)`", table):
        # A name followed by .py is a file named whole (its tests are the proof), not a test.
        for match in re.finditer(r"(?:(\w+\.py)::)?(test_\w+)(?![\w.])", cell):
            named.append((match.group(1), match.group(2)))
    return named


def test_the_table_names_tests():
    assert len(named_tests()) > 30


def test_every_test_the_table_names_exists():
    defined = defined_tests()
    everywhere = set().union(*defined.values())
    missing = [f"{f or '*'}::{t}" for f, t in named_tests()
               if (t not in defined.get(f, set()) if f else t not in everywhere)]
    assert not missing, f"docs/security-model.md names tests that do not exist: {missing}"


def test_every_test_file_the_table_names_exists():
    table = DOC.split("## Controls, and the test that proves each", 1)[1].split("\n## ", 1)[0]
    files = set(re.findall(r"(test_\w+\.py)", table))
    assert files, "the table names no test file"
    missing = sorted(files - {p.name for p in SOURCES})
    assert not missing, f"docs/security-model.md names test files that do not exist: {missing}"
