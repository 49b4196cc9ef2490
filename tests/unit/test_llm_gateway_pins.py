"""roles/llm_gateway/files/pins_match.py, which lets the role skip pip when the gateway's
virtualenv already holds every pin: run here with this test's own Python and pins of the
packages it has, then with one pin changed, one package missing, and a line that is not a pin."""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "llm_gateway" / "files" / "pins_match.py"


def run(tmp_path: Path, lines: list[str]) -> subprocess.CompletedProcess:
    req = tmp_path / "requirements.txt"
    req.write_text("\n".join(lines) + "\n")
    return subprocess.run([sys.executable, str(SCRIPT), str(req)], capture_output=True, text=True, check=False)


def pins() -> list[str]:
    # Spelled as a lock may spell them (underscores, capitals), with a comment and a blank line.
    return ["# the lock", "", f"PyYAML=={metadata.version('pyyaml')}", f"pytest_xdist=={metadata.version('pytest-xdist')}",
            f"jinja2=={metadata.version('jinja2')}  # the templating"]


def test_matching_pins_skip_pip(tmp_path):
    res = run(tmp_path, pins())
    assert res.returncode == 0 and res.stdout.strip() == "pins match", res.stdout + res.stderr


@pytest.mark.parametrize("change,named", [
    (lambda p: p[:2] + ["PyYAML==0.0.1"] + p[3:], "PyYAML==0.0.1"),
    (lambda p: p + ["no-such-distribution==1.0"], "no-such-distribution==1.0"),
    (lambda p: p + ["jinja2>=3"], "jinja2>=3"),
], ids=["other-version", "missing", "not-a-pin"])
def test_a_difference_runs_pip_and_is_named(tmp_path, change, named):
    res = run(tmp_path, change(pins()))
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"differs: {named}" in res.stdout
