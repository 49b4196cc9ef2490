#!/usr/bin/env python3
"""A repo mutant's edit that must apply: replace OLD by NEW in FILE exactly once, or delete
the lines that match a regular expression (at least one). Exits non-zero, changing nothing,
when the text is not there: a mutation that silently does nothing would look like a
surviving mutant.

    tools/mutants/edit.py FILE OLD NEW
    tools/mutants/edit.py FILE --delete-lines REGEX
"""
from __future__ import annotations

import re
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, first, second = Path(argv[0]), argv[1], argv[2]
    text = path.read_text()
    if first == "--delete-lines":
        lines = text.splitlines(keepends=True)
        kept = [line for line in lines if not re.search(second, line)]
        if len(kept) == len(lines):
            print(f"{path}: no line matches {second!r}", file=sys.stderr)
            return 1
        path.write_text("".join(kept))
        return 0
    count = text.count(first)
    if count != 1:
        print(f"{path}: {first!r} found {count} times (once expected)", file=sys.stderr)
        return 1
    path.write_text(text.replace(first, second))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
