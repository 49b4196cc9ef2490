"""Whether this Python environment holds every pin of a requirements file at its exact version.

The llm_gateway role runs it with the gateway's virtualenv's Python before pip: exit 0 (the
pins match, pip is skipped), 1 (a pin is missing or at another version, named on stdout: pip
installs). pip itself takes seconds to find that nothing is to do; this takes a fraction.
Usage: pins_match.py REQUIREMENTS (lines of name==version; comments and blank lines ignored).
"""
import re
import sys
from importlib import metadata


def norm(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def main(path: str) -> int:
    installed = {norm(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, version = line.partition("==")
            if not sep or installed.get(norm(name.strip())) != version.strip():
                print(f"differs: {line} (installed: {installed.get(norm(name.strip()), 'none')})")
                return 1
    print("pins match")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
