"""A moto EC2 emulator on a free loopback port, for the AWS tier's tests.

The server runs in its own process (tests/helpers/moto_launcher.py, which corrects
moto's tag resource types, see there). Only 127.0.0.1 is used; the environment built
by ``aws_env`` points boto3, the amazon.aws modules and the aws_ec2 inventory plugin
at it with dummy credentials, so nothing can reach real AWS.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

LAUNCHER = Path(__file__).with_name("moto_launcher.py")
ROOT = Path(__file__).resolve().parents[2]
# The bin directory of the Python running the tests (ansible-playbook, ansible, ...).
BIN = Path(sys.executable).parent
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """Start, query, reset and stop one moto server process."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "MotoServer":
        log = open(self.log_path, "wb")  # noqa: SIM115 (kept open for the process)
        self.proc = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            # Requests are recorded (only while a test switches recording on) to this file.
            env={**os.environ, **self.env(), "MOTO_RECORDER_FILEPATH": str(self.log_path.with_suffix(".recording"))},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _post(self, path: str, body: bytes = b"") -> bytes:
        req = urllib.request.Request(f"{self.url}{path}", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read()

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        self._post("/moto-api/reset")

    def start_recording(self) -> None:
        """Record every request from now on (moto's recorder)."""
        self._post("/moto-api/recorder/reset-recording")
        self._post("/moto-api/recorder/start-recording")

    def recorded_requests(self) -> list[dict]:
        """Stop recording and return the recorded requests."""
        self._post("/moto-api/recorder/stop-recording")
        with urllib.request.urlopen(f"{self.url}/moto-api/recorder/download-recording", timeout=30) as resp:
            text = resp.read().decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def env(self) -> dict[str, str]:
        """Environment for boto3, ansible and moto itself: this server, dummy credentials."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_URL": self.url,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, service: str = "ec2"):
        import boto3

        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def base_env(moto: MotoServer, environment: str) -> dict[str, str]:
    """The environment of an Ansible command run against `moto` for one airlock environment:
    no AWS_*/AIRLOCK_* variable of the caller's, the server's, the project's ansible.cfg,
    plain output, and BIN first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRLOCK_"))}
    env.update(moto.env())
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        AIRLOCK_ENVIRONMENT=environment,
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env
