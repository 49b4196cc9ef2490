"""tools/probes/reach.py, the probe validate.yml runs on the hosts and in sandbox containers:
its name lookup at a given resolver (the first A record of the answer, CNAMEs skipped,
addresses passed through), and the zipapp tools/probes/build_reach.py makes of it with
dnspython, run as validate.yml runs it against a resolver on loopback, by a Python with
dnspython installed and by one with no site-packages at all."""
from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from helpers.fake_resolver import FakeResolver
from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
reach = load_module(ROOT / "tools" / "probes" / "reach.py")
builder = load_module(ROOT / "tools" / "probes" / "build_reach.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def answer(name: str, *records: tuple[str, str, str], rcode: int = dns.rcode.NOERROR) -> dns.message.Message:
    query = dns.message.make_query(name, "A")
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    for owner, rtype, value in records:
        response.answer.append(dns.rrset.from_text(owner, 60, "IN", rtype, value))
    return response


def test_an_address_is_used_as_given(monkeypatch):
    monkeypatch.setattr(reach, "_query", lambda *a: pytest.fail("no lookup for an address"))
    assert reach.lookup("10.0.0.5", "10.0.0.2") == "10.0.0.5"


def test_a_name_without_resolver_is_left_to_the_system():
    assert reach.lookup("decoy.lab", None) == "decoy.lab"


def test_the_first_a_record_after_a_cname(monkeypatch):
    reply = answer("decoy.lab", ("decoy.lab.", "CNAME", "edge.cdn.lab."), ("edge.cdn.lab.", "A", "10.9.8.7"),
                   ("edge.cdn.lab.", "A", "10.9.8.8"))
    monkeypatch.setattr(reach, "_query", lambda resolver, name: reply)
    assert reach.lookup("decoy.lab", "10.0.0.2") == "10.9.8.7"


@pytest.mark.parametrize("reply", [
    answer("decoy.lab"),                                                # NOERROR, no record
    answer("decoy.lab", ("decoy.lab.", "CNAME", "edge.cdn.lab.")),      # a CNAME and no A
    answer("decoy.lab", ("decoy.lab.", "AAAA", "fd00::7")),             # another family only
    answer("decoy.lab", rcode=dns.rcode.NXDOMAIN),
], ids=["empty", "cname-only", "aaaa-only", "nxdomain"])
def test_no_a_record_is_an_error(monkeypatch, reply):
    monkeypatch.setattr(reach, "_query", lambda resolver, name: reply)
    with pytest.raises(OSError, match="has no address for decoy.lab"):
        reach.lookup("decoy.lab", "10.0.0.2")


def test_a_failure_of_the_probe_itself_is_neither_reached_nor_not(monkeypatch, capsys):
    """Exit 3 and "reached": null, so that validate.yml fails the row (a block check must not
    pass on a probe that never ran, say a DNS library that fails on the target's Python)."""
    def broken(*args):
        raise AttributeError("module 'datetime' has no attribute 'UTC'")
    monkeypatch.setattr(reach, "_query", broken)
    assert reach.main(["reach.py", "dns", "10.0.0.2", "decoy.lab"]) == 3
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["reached"] is None and "AttributeError" in verdict["detail"]


# ----------------------------------------------------------------------------- the zipapp
@pytest.fixture(scope="module")
def pyz(tmp_path_factory) -> Path:
    return builder.build(tmp_path_factory.mktemp("probe") / "reach.pyz")


def test_the_zipapp_is_the_probe_with_dnspython_and_its_licence(pyz, tmp_path):
    names = zipfile.ZipFile(pyz).namelist()
    assert names[0] == "__main__.py" and zipfile.ZipFile(pyz).read("__main__.py") == (ROOT / "tools/probes/reach.py").read_bytes()
    assert {"dns/__init__.py", "dns/message.py", "dns/query.py", "dns/rdtypes/IN/A.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert [n for n in names if n.startswith("dnspython-") and "LICENSE" in n.upper()], "dnspython's licence travels with it"
    # The same bytes every time: shipping it again is no change.
    assert builder.build(tmp_path / "again.pyz").read_bytes() == pyz.read_bytes()


@pytest.fixture()
def resolver():
    fake = FakeResolver({"decoy.lab": ["127.0.0.1"], "empty.lab": [], "silent.lab": None, "echo.lab": "echo"})
    yield fake
    fake.close()


@pytest.fixture()
def listener():
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


# The Python of the oldest host release the inventories deploy: Ubuntu 22.04, the AWS
# inventory's default image. The probe's dnspython must run on it.
HOST_PYTHONS = {"jammy-22.04": "3.10", "noble-24.04": "3.12", "bookworm": "3.11"}
OLDEST_HOST_VERSION = "3.10"
OLDEST_HOST_PYTHON = f"python{OLDEST_HOST_VERSION}"


def _oldest_host_python() -> str | None:
    """A python3.10 that runs: on the PATH, or one of pyenv's versions (whose shim on the
    PATH runs only where that version is selected)."""
    candidates = [shutil.which(OLDEST_HOST_PYTHON)]
    if shutil.which("pyenv"):
        versions = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True, check=False).stdout
        for version in (v.strip() for v in versions.splitlines() if v.strip().startswith(f"{OLDEST_HOST_VERSION}.")):
            prefix = subprocess.run(["pyenv", "prefix", version], capture_output=True, text=True, check=False).stdout.strip()
            candidates.append(str(Path(prefix) / "bin" / OLDEST_HOST_PYTHON) if prefix else None)
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", ""], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


OLDEST_HOST_PYTHON_PATH = _oldest_host_python()

# The venv's Python (dnspython installed: the zipapp's copy comes first), the system's
# Python with no site-packages at all (-S: the zipapp alone must do, as on a host or in a
# sandbox image without dnspython), and, where this machine has one, the oldest host's
# Python version, also without site-packages.
PYTHONS = [
    pytest.param([sys.executable], id="venv-python"),
    pytest.param([SYSTEM_PYTHON, "-S"], id="system-python-no-site-packages",
                 marks=pytest.mark.skipif(not shutil.which(SYSTEM_PYTHON), reason=f"no {SYSTEM_PYTHON}")),
    pytest.param([OLDEST_HOST_PYTHON_PATH, "-S"], id="oldest-host-python-no-site-packages",
                 marks=pytest.mark.skipif(not OLDEST_HOST_PYTHON_PATH, reason=f"no {OLDEST_HOST_PYTHON} that runs")),
]


def test_the_shipped_dnspython_admits_the_oldest_host_python():
    """validate.yml ships the controller's dnspython to the hosts (reach.pyz): its declared
    Python range must admit the Python of the AWS inventory's default image (dnspython 2.9
    needs 3.11, Ubuntu 22.04 has 3.10; requirements.in pins the newest that admits it)."""
    ami = yaml.safe_load((ROOT / "inventories" / "aws" / "group_vars" / "all.yml").read_text())["airlock_aws_ami_name_filter"]
    releases = [release for release in HOST_PYTHONS if release in ami]
    assert releases, f"the AWS image filter {ami!r} names no release this test knows the Python of"
    host_python = HOST_PYTHONS[releases[0]]
    # The zipapp tests run under OLDEST_HOST_VERSION: no host may be older.
    assert Version(host_python) >= Version(OLDEST_HOST_VERSION), (host_python, OLDEST_HOST_VERSION)
    requires = importlib.metadata.metadata("dnspython")["Requires-Python"]
    assert host_python in SpecifierSet(requires), (
        f"dnspython {importlib.metadata.version('dnspython')} requires Python {requires}: the AWS hosts' {host_python} cannot run the probe")


def run(python: list[str], pyz: Path, *args: str) -> tuple[int, dict]:
    proc = subprocess.run([*python, str(pyz), *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "REACH_TIMEOUT": "1"}, check=False)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("python", PYTHONS)
def test_the_zipapp_queries_a_resolver_and_connects_to_the_address_it_gives(pyz, resolver, listener, python):
    rc, verdict = run(python, pyz, "dns", resolver.address, "decoy.lab")
    assert (rc, verdict["reached"]) == (0, True) and verdict["detail"] == "answer NOERROR, 1 records", verdict
    rc, verdict = run(python, pyz, "tcp", "decoy.lab", str(listener), resolver.address)
    assert (rc, verdict["reached"], verdict["detail"]) == (0, True, "connected"), verdict
    # A refusal is an answer too: the resolver was reached.
    rc, verdict = run(python, pyz, "dns", resolver.address, "unknown.lab")
    assert (rc, verdict["reached"]) == (0, True) and verdict["detail"].startswith("answer NXDOMAIN"), verdict


@pytest.mark.parametrize("python", PYTHONS)
def test_the_zipapp_fails_a_lookup_without_an_a_record_or_an_answer(pyz, resolver, listener, python):
    for name, error in (("empty.lab", "has no address for empty.lab"), ("unknown.lab", "has no address for unknown.lab"),
                        ("silent.lab", "DNSError: Timeout"), ("echo.lab", "NotAnAnswer: ")):
        rc, verdict = run(python, pyz, "tcp", name, str(listener), resolver.address)
        assert (rc, verdict["reached"]) == (1, False) and error in verdict["detail"], (name, verdict)
    rc, verdict = run(python, pyz, "dns", resolver.address, "silent.lab")
    assert (rc, verdict["reached"]) == (1, False) and "Timeout" in verdict["detail"], verdict


def test_the_system_python_has_no_dnspython_of_its_own():
    """What the -S runs above stand for: a Python that cannot import dnspython without the
    zipapp (here even with its site-packages)."""
    if not shutil.which(SYSTEM_PYTHON):
        pytest.skip(f"no {SYSTEM_PYTHON}")
    proc = subprocess.run([SYSTEM_PYTHON, "-S", "-c", "import dns"], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "No module named 'dns'" in proc.stderr


@pytest.mark.parametrize("python", PYTHONS)
def test_any_reply_reaches_but_only_an_answer_resolves(pyz, resolver, python):
    """A resolver that replies with something that is no DNS answer (the lab's decoy echoes
    on UDP 53) was reached: the way out is open, and a block check must fail on it; a name
    cannot be looked up there."""
    rc, verdict = run(python, pyz, "dns", resolver.address, "echo.lab")
    assert (rc, verdict["reached"]) == (0, True) and verdict["detail"].startswith("a reply that is not a DNS answer"), verdict
