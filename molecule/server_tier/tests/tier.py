"""What the server tier's tests share: the scenario's addresses and keys (molecule.yml), the
stand-in's probe code and how to run it on a host, and waiting for a condition."""
from __future__ import annotations

import json
import shlex
import time

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
