#!/usr/bin/env python3
"""Build reach.pyz: one zipapp of tools/probes/reach.py (as its __main__) and the dnspython
(package ``dns``) of the Python that runs this script, with dnspython's licence.

    build_reach.py OUT      write the zipapp to OUT; run as `python3 OUT ARGS...`

playbooks/validate.yml runs this on the controller with the Python that runs Ansible
(ansible_playbook_python), so the probe carries the controller's pinned dnspython
(requirements.txt) to hosts and sandbox images that may not have it: one file, one copy.
The archive is the same bytes for the same inputs (fixed timestamps, sorted entries), so
shipping it again changes nothing.

The pinned dnspython (2.8) declares Python >= 3.10, the oldest host's (Ubuntu 22.04); 2.9
needs 3.11. See docs/operations.md, "The reachability probe".
"""
from __future__ import annotations

import importlib.metadata
import sys
import zipfile
from pathlib import Path

import dns

REACH = Path(__file__).resolve().with_name("reach.py")
STAMP = (1980, 1, 1, 0, 0, 0)


def _entries() -> list[tuple[str, bytes]]:
    package = Path(dns.__file__).resolve().parent
    entries = [("__main__.py", REACH.read_bytes())]
    entries += [((Path("dns") / f.relative_to(package)).as_posix(), f.read_bytes())
                for f in sorted(package.rglob("*.py")) if "__pycache__" not in f.parts]
    dist = importlib.metadata.distribution("dnspython")
    licences = [f for f in dist.files or [] if f.name.upper().startswith("LICENSE")]
    entries += [(f"dnspython-{dist.version}.{f.name}", f.locate().read_bytes()) for f in licences]
    return entries


def build(out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in _entries():
            info = zipfile.ZipInfo(name, STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(build(Path(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
