"""Fixtures of the AWS tier's tests: one moto server per session, playbook runners.

Nothing here talks to real AWS: every subprocess gets the moto server's URL through
AWS_URL / AWS_ENDPOINT_URL (and the playbooks also through aws_enclave_endpoint_url)
and dummy credentials, with the user's AWS config files hidden.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.moto_server import BIN, MotoServer, base_env

ROOT = Path(__file__).resolve().parents[2]
RECAP = re.compile(r"^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
# moto ships Ubuntu images under Canonical's owner id, but no 22.04 one.
MOTO_AMI_FILTER = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*"


@dataclass
class Run:
    rc: int
    output: str

    @property
    def recap(self) -> dict[str, int]:
        found = RECAP.findall(self.output)
        assert found, f"no play recap in output:\n{self.output[-3000:]}"
        ok, changed, unreachable, failed = map(int, found[-1])
        return {"ok": ok, "changed": changed, "unreachable": unreachable, "failed": failed}


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ssh_public_key(tmp_path_factory) -> str:
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "airlock-test", "-f", str(key)], check=True)
    return key.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="session")
def local_inventory(tmp_path_factory) -> Path:
    """The AWS inventory's group_vars with a static localhost, so the playbooks get the
    provider values without the aws_ec2 plugin querying anything (no API call from the
    inventory itself)."""
    inv = tmp_path_factory.mktemp("inventory")
    shutil.copytree(ROOT / "inventories" / "aws" / "group_vars", inv / "group_vars")
    (inv / "hosts.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    return inv


@pytest.fixture(scope="session")
def playbook(moto, local_inventory, ssh_public_key, tmp_path_factory):
    """Start (or run) a playbook against moto for one environment."""
    vars_dir = tmp_path_factory.mktemp("vars")

    def command(name: str, environment: str, extra: dict | None = None, inventory: Path | None = None):
        base = {
            "aws_enclave_endpoint_url": moto.url,
            "airlock_aws_ami_name_filter": MOTO_AMI_FILTER,
            "airlock_aws_ssh_public_key": ssh_public_key,
            "airlock_authorized_cidrs": ["203.0.113.0/24"],
        }
        base.update(extra or {})
        path = vars_dir / f"{environment}-{name}-{abs(hash(json.dumps(base, sort_keys=True)))}.json"
        path.write_text(json.dumps(base))
        cmd = [str(BIN / "ansible-playbook"), "-i", str(inventory or local_inventory),
               str(ROOT / "playbooks" / name), "-e", f"@{path}"]
        return cmd, base_env(moto, environment)

    def start(name, environment, extra=None, inventory=None, args=()):
        cmd, env = command(name, environment, extra, inventory)
        return subprocess.Popen([*cmd, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def run(name, environment, extra=None, inventory=None, args=()) -> Run:
        proc = start(name, environment, extra, inventory, args)
        output, _ = proc.communicate(timeout=900)
        return Run(proc.returncode, output)

    def wait(proc) -> Run:
        output, _ = proc.communicate(timeout=900)
        return Run(proc.returncode, output)

    run.start = start
    run.wait = wait
    return run
