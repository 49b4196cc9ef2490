"""tools/probes/proxy_probe.py can tell an old-TLS server from a modern one.

validate.yml trusts the probe's "TLS 1.0/1.1 refused"; this proves the probe really
offers those versions (so a proxy that accepted them would be caught)."""
from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
probe = load_module(ROOT / "tools" / "probes" / "proxy_probe.py")


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def tls_server(cert, minimum):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = minimum
    ctx.load_cert_chain(*cert)
    sock = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            try:
                ctx.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return sock


@pytest.mark.parametrize("minimum,expected", [
    (ssl.TLSVersion.TLSv1, {"TLSv1": True, "TLSv1_1": True, "TLSv1_2": True, "TLSv1_3": True}),
    (ssl.TLSVersion.TLSv1_2, {"TLSv1": False, "TLSv1_1": False, "TLSv1_2": True, "TLSv1_3": True}),
])
def test_handshake_per_version(cert, minimum, expected):
    server = tls_server(cert, minimum)
    args = SimpleNamespace(host="127.0.0.1", port=server.getsockname()[1], server_name="localhost",
                           cafile=None, timeout=5)
    try:
        found = {name: probe.handshake(args, v) for name, v in probe.TLS_VERSIONS.items()}
    finally:
        server.close()
    assert found == expected
