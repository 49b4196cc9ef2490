"""The tests have one way to import the project's code: tests/ is on sys.path through
pyproject.toml's pythonpath (`from helpers... import`), a test's own directory through
pytest (a sibling module imports by name), and a plugin or script loads by path with
helpers.modules.load_module. No test edits sys.path or builds an import spec of its own."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
LOADER = ROOT / "tests" / "helpers" / "modules.py"
# importlib's ways to load a file by hand (load_module's own).
SPEC_NAMES = {"spec_from_file_location", "spec_from_loader", "module_from_spec", "SourceFileLoader"}
PATH_EDITS = {"insert", "append", "extend"}


def scanned_files() -> list[Path]:
    files = [*(ROOT / "tests").rglob("*.py"), *ROOT.glob("molecule/*/tests/*.py"), ROOT / "tools" / "realserver" / "test_realserver.py"]
    return sorted(f for f in files if f != LOADER)


def _is_sys_path(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) and node.value.id == "sys"


def _targets(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Assign):
        return node.targets
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return [node.target]
    return []


def offences(source: str) -> list[str]:
    """The lines of `source` that edit sys.path or load a file through importlib by hand
    (code only: a string that holds such code, run elsewhere, is not one)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in PATH_EDITS \
                and _is_sys_path(node.func.value):
            found.append(f"{node.lineno}: sys.path.{node.func.attr}")
        for target in _targets(node):
            if _is_sys_path(target) or (isinstance(target, ast.Subscript) and _is_sys_path(target.value)):
                found.append(f"{node.lineno}: assigns sys.path")
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if name in SPEC_NAMES:
            found.append(f"{node.lineno}: {name}")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("importlib"):
            found += [f"{node.lineno}: imports {alias.name}" for alias in node.names if alias.name in SPEC_NAMES]
    return sorted(set(found), key=lambda line: (int(line.split(":")[0]), line))


def test_the_scan_covers_every_kind_of_test_file():
    names = {f.relative_to(ROOT).parts[:2] for f in scanned_files()}
    for part in [("tests", "unit"), ("tests", "roles"), ("tests", "aws"), ("tests", "host"), ("tests", "e2e"),
                 ("tests", "helpers"), ("molecule", "server_tier"), ("tools", "realserver")]:
        assert part in names, f"no file of {'/'.join(part)} scanned"


@pytest.mark.parametrize("source,expected", [
    ("import sys\nsys.path.insert(0, 'x')\n", ["2: sys.path.insert"]),
    ("import sys\nsys.path.append('x')\n", ["2: sys.path.append"]),
    ("import sys\nsys.path[:0] = ['x']\n", ["2: assigns sys.path"]),
    ("import importlib.util\ns = importlib.util.spec_from_file_location('m', 'm.py')\n", ["2: spec_from_file_location"]),
    ("from importlib.util import spec_from_file_location\n", ["1: imports spec_from_file_location"]),
    ("import importlib.machinery\nloader = importlib.machinery.SourceFileLoader('m', 'm')\n", ["2: SourceFileLoader"]),
    # Code in a string runs elsewhere (a probe on a test host), and reading sys.path is no edit.
    ("PROBE = \"import sys; sys.path[:0] = ['/opt/x']\"\nimport sys\nprint(sys.path)\n", []),
    ("from helpers.modules import load_module\nm = load_module('m.py')\n", []),
])
def test_the_scan_finds_each_edit_and_only_those(source, expected):
    assert offences(source) == expected


def test_no_test_edits_sys_path_or_loads_a_file_by_hand():
    bad = {}
    for path in scanned_files():
        found = offences(path.read_text(encoding="utf-8"))
        if found:
            bad[str(path.relative_to(ROOT))] = found
    assert not bad, ("import tests/ as `helpers` (pyproject's pythonpath), a sibling by name, and a plugin or "
                     "script with helpers.modules.load_module(path), not by editing sys.path or with importlib:\n"
                     + "\n".join(f"  {name}: {', '.join(lines)}" for name, lines in bad.items()))


def test_load_module_loads_a_file_by_path_registering_it_only_when_asked(tmp_path):
    script = tmp_path / "some-tool"  # a script without the .py suffix
    script.write_text("import sys\nNAME = __name__\nSEEN = sys.modules.get(__name__)\n")
    module = load_module(script, "some_tool")
    assert module.NAME == "some_tool" and module.SEEN is None and module.__file__ == str(script)
    assert "some_tool" not in sys.modules
    assert load_module(tmp_path / "some-tool").NAME == "some-tool"  # the stem by default

    try:
        first = load_module(script, "some_tool", register=True)
        assert first.SEEN is first and sys.modules["some_tool"] is first  # there while it runs
        again = load_module(script, "some_tool", register=True)
        assert again is not first and sys.modules["some_tool"] is again  # afresh, the last one holds the name

        broken = tmp_path / "broken.py"
        broken.write_text("raise RuntimeError('broken')\n")
        with pytest.raises(RuntimeError):
            load_module(broken, "some_tool", register=True)
        assert sys.modules["some_tool"] is again  # a failed load leaves the name as it was
        with pytest.raises(RuntimeError):
            load_module(broken, register=True)
        assert "broken" not in sys.modules
    finally:
        sys.modules.pop("some_tool", None)
