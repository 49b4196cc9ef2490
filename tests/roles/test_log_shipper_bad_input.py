"""Bad input to the log_shipper role is refused before anything changes on the host, naming
the variable; and a package whose SHA-256 is not the pinned one is refused on the controller,
before the host gets the package directory, the package or the agent's configuration.

Each case runs ansible-playbook against localhost (connection local) on a valid baseline:
the stand-in agent package (tools/standin/cloudwatch-agent) built into tmp_path and
"downloaded" from a file:// URL. The positive control of the checksum case is the same
package with its real SHA-256 passing the same download (the controller's part alone).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
HOST_DIR = Path("/var/cache/airlock-log-shipper")
CONFIG = Path("/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json")


@pytest.fixture(scope="module")
def standin_deb(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("standin") / "amazon-cloudwatch-agent-standin.deb"
    subprocess.run([str(ROOT / "tools/standin/cloudwatch-agent/build.sh"), str(out)], check=True, capture_output=True)
    return out


def baseline(tmp_path: Path, deb: Path) -> dict:
    return {
        "log_shipper_enabled": True,
        "log_shipper_region": "us-east-1",
        "log_shipper_streams": [{"name": "audit", "file": "/var/log/audit/audit.log", "group": "/airlock/t/proxy/audit"}],
        "log_shipper_package_version": "0.0.0+airlock.standin",
        "log_shipper_package_url": f"file://{deb}",
        "log_shipper_package_sha256": hashlib.sha256(deb.read_bytes()).hexdigest(),
        "log_shipper_controller_cache_dir": str(tmp_path / "cache"),
    }


def run_role(tmp_path: Path, variables: dict, *args: str) -> subprocess.CompletedProcess:
    playbook = tmp_path / "play.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  roles: [log_shipper]\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FACT_CACHING": "memory"}
    variables = {**variables, "ansible_python_interpreter": sys.executable}
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(playbook), "-e", json.dumps(variables), *args],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180, check=False)


def host_untouched() -> None:
    assert not HOST_DIR.exists(), f"{HOST_DIR} was created"
    assert not CONFIG.exists(), f"{CONFIG} was written"
    installed = subprocess.run(["dpkg-query", "-W", "amazon-cloudwatch-agent"], capture_output=True, check=False)
    assert installed.returncode != 0, "the agent package was installed"


@pytest.fixture(autouse=True)
def _clean_machine():
    # The role would install the agent on this machine with a good input: the cases below
    # must never get there, and the assertions need a machine without it to start with.
    if HOST_DIR.exists() or CONFIG.exists():
        pytest.skip("this machine has the log shipper's files already")


def test_a_package_whose_sha256_differs_is_refused_before_the_host_changes(tmp_path, standin_deb):
    variables = baseline(tmp_path, standin_deb)
    cache = tmp_path / "cache"
    # Positive control: the same package with its real SHA-256 passes the same download
    # (the controller's part alone, --tags log_shipper_fetch: the host's tasks never run).
    ok = run_role(tmp_path, variables, "--tags", "log_shipper_fetch")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert [p.name for p in cache.iterdir()] == ["amazon-cloudwatch-agent_0.0.0+airlock.standin.deb"]
    host_untouched()
    for p in cache.iterdir():
        p.unlink()
    # The whole role with a SHA-256 that is not the package's: refused at the download.
    wrong = {**variables, "log_shipper_package_sha256": hashlib.sha256(b"not the package").hexdigest()}
    result = run_role(tmp_path, wrong)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "did not match" in out and wrong["log_shipper_package_sha256"] in out, out
    assert "changed=0" in out, out
    assert list(cache.iterdir()) == [], "the mismatching download was kept"
    host_untouched()


@pytest.mark.parametrize("over,message", [
    ({"log_shipper_package_sha256": ""}, "log_shipper_package_sha256 is empty"),
    ({"log_shipper_package_sha256": "sha256:abc"}, "log_shipper_package_sha256: 'sha256:abc' is not a SHA-256"),
    ({"log_shipper_region": ""}, "log_shipper_region: '' is not an AWS region"),
    ({"log_shipper_streams": []}, "log_shipper_streams must list at least one"),
    ({"log_shipper_streams": [{"name": "audit", "file": "audit.log", "group": "/g"}]}, "log_shipper_streams[0].file"),
    ({"log_shipper_endpoint_url": "logs.us-east-1.amazonaws.com"}, "log_shipper_endpoint_url"),
    ({"log_shipper_package_url": "http://example.org/amazon-cloudwatch-agent.deb"}, "log_shipper_package_url"),
    ({"log_shipper_mode": "onprem"}, "log_shipper_mode"),
])
def test_bad_input_is_refused_before_any_change(tmp_path, standin_deb, over, message):
    result = run_role(tmp_path, {**baseline(tmp_path, standin_deb), **over})
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert message in out, out
    assert "changed=0" in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["play.yml"], "something was written on the controller"
    host_untouched()
