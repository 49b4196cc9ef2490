"""Load a plugin or script of the project as a module, by path (filter plugins and tools
are not packages)."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def load_module(path: Path, name: str | None = None):
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
