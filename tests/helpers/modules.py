"""Load a plugin or script of the project as a module, by path (filter plugins and tools
are not packages, and some scripts have no .py suffix).

The tests' one way to the project's code besides plain imports: tests/ is on sys.path
through pyproject.toml's pythonpath (`from helpers... import`), a test's own directory
through pytest (a sibling module imports by name); no test edits sys.path
(tests/unit/test_test_imports.py).
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path


def load_module(path: Path, name: str | None = None, *, register: bool = False):
    """Execute the file at `path` as a new module named `name` (default: the file's stem).

    register=True puts the module in sys.modules under its name before it runs, as an
    import does: for code that looks its module up by name while it runs (dataclasses
    with string annotations) or that another loaded file imports by that name. Each call
    loads the file afresh and the last one loaded holds the name; a module whose code
    fails leaves sys.modules as it was.
    """
    name = name or Path(path).stem
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    if not register:
        loader.exec_module(module)
        return module
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    return module
