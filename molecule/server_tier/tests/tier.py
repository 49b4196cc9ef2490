"""What the server tier's tests share: the scenario's addresses and keys (molecule.yml), the
stand-in's probe code and how to run it on a host, an HTTP request from a host, starting a
sandbox the way OpenHands does (through the stand-in app), waiting for a condition, and
running the monitoring role's alertd in the server container."""
from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

SERVER_IP, LLM_IP, DECOY_IP, PROXY_IP = "10.213.5.10", "10.213.5.20", "10.213.5.30", "10.213.5.40"
DECOY_IP6 = "fd5e:a1c0:213:5::30"
KEY = "sk-airlock-stand-in-test-key"  # the provider's key: only the gateway holds it
GATEWAY_KEY = "sk-airlock-gateway-test-key-0123456789abcdef"  # what the app and sandboxes hold
GATEWAY_USER = "airlock-llm"
# The stand-in's probe code: shipped to the test hosts, and part of the sandbox image.
PROBE = ("import sys, json; sys.path[:0] = ['/usr/local/lib/airlock-test', '/opt/standin']; import standin; "
         "print(json.dumps(standin.run_probe(json.loads(sys.argv[1]))))")


def probe(host, spec: dict, user: str | None = None) -> dict:
    """Run one stand-in probe on a testinfra `host` (as root, or as `user`: the LLM endpoints
    open to the gateway's user only)."""
    prefix = f"runuser -u {user} -- " if user else ""
    return json.loads(host.check_output(f"{prefix}python3 -c {shlex.quote(PROBE)} {shlex.quote(json.dumps(spec))}"))


def wait_for(func, timeout=60, step=1):
    """func's first truthy result within `timeout` seconds, else its last result."""
    deadline = time.time() + timeout
    while True:
        result = func()
        if result or time.time() > deadline:
            return result
        time.sleep(step)


def http(host, url: str, method: str = "GET", body: dict | None = None, timeout: int = 5):
    """(status, parsed body or None) of a request made from a testinfra `host`; status 0 if
    unreachable."""
    data = f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}" if body is not None else ""
    cmd = host.run(f"curl -sS -m {timeout} -X {method} {data} -w '\\n%{{http_code}}' {shlex.quote(url)}")
    if cmd.rc != 0:
        return 0, None
    text, _, code = cmd.stdout.rpartition("\n")
    try:
        return int(code), json.loads(text) if text else None
    except ValueError:
        return int(code), text


def start_sandbox(proxy, probe_urls=()) -> dict:
    """A sandbox container started by the stand-in app through the Docker socket, as V1 does;
    returned once its agent-server answers the proxy on its published port."""
    status, info = http(proxy, f"http://{SERVER_IP}:3000/api/stand-in/sandboxes", "POST", {"probe_urls": list(probe_urls)})
    assert status == 201, info
    port = info["ports"]["8000"]
    assert wait_for(lambda: http(proxy, f"http://{SERVER_IP}:{port}/alive")[0] == 200, 30), "sandbox never answered"
    return info


ALERTD_SOURCE = Path(__file__).resolve().parents[3] / "roles" / "monitoring" / "files" / "alertd.py"


def start_alertd(host, container: str, config: dict, path: str, config_path: str, unit: str, settle: float) -> None:
    """The monitoring role's alertd, copied into `container` (the testinfra `host`) at `path`,
    its `config` checked and written to `config_path`, run as the transient unit `unit`;
    `settle` seconds for its watchers to start following their sources."""
    subprocess.run(["docker", "cp", str(ALERTD_SOURCE), f"{container}:{path}"], check=True, capture_output=True)
    host.check_output(f"echo {shlex.quote(json.dumps(config))} > {config_path}")
    host.check_output(f"python3 {path} --check-config {config_path}")
    host.run(f"systemctl stop {unit}; systemctl reset-failed {unit}")
    host.check_output(f"systemd-run --unit {unit} /usr/bin/python3 {path} --config {config_path}")
    assert wait_for(lambda: host.service(unit).is_running, 20), f"alertd ({unit}) did not start"
    time.sleep(settle)
