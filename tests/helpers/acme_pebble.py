"""Pebble (Let's Encrypt's test ACME server, Debian package ``pebble``) on loopback, with a
small DNS server that answers TXT queries from a moto Route 53: the CA validates dns-01
challenges against the records the code under test really wrote into the emulated zone.

Only 127.0.0.1 is used. Pebble's API certificate comes from a throwaway CA made here with
openssl; ``api_ca`` is that CA, for clients of the ACME API. Pebble's issuing roots are
its own (random per start), read from its management API by ``issuing_roots``.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from helpers.moto_server import free_port


class Route53Dns:
    """A UDP DNS server on 127.0.0.1 answering TXT queries from a Route 53 API (moto)."""

    def __init__(self, route53_client):
        self.r53 = route53_client
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.queries: list[tuple[str, str, list[str]]] = []  # (name, type, TXT values answered)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> "Route53Dns":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()

    def txt_values(self, name: str) -> list[str]:
        """The TXT values of NAME in the longest matching hosted zone (strings, unquoted)."""
        name = name.lower().rstrip(".") + "."
        zones = [z for z in self.r53.list_hosted_zones()["HostedZones"]
                 if name == z["Name"] or name.endswith("." + z["Name"])]
        if not zones:
            return []
        zone = max(zones, key=lambda z: len(z["Name"]))
        rrsets = self.r53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
        return [r["Value"].strip('"') for s in rrsets
                if s["Type"] == "TXT" and s["Name"].lower().rstrip(".") + "." == name
                for r in s.get("ResourceRecords", [])]

    def _serve(self) -> None:
        self.sock.settimeout(0.5)
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            try:
                query = dns.message.from_wire(wire)
            except Exception:  # noqa: BLE001 (garbage in: no answer)
                continue
            answer = dns.message.make_response(query)
            answer.flags |= dns.flags.AA
            for question in query.question:
                name, rdtype = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
                values = self.txt_values(name) if question.rdtype == dns.rdatatype.TXT else []
                self.queries.append((name.lower(), rdtype, values))
                if values:
                    answer.answer.append(dns.rrset.from_text_list(
                        question.name, 60, dns.rdataclass.IN, dns.rdatatype.TXT, [f'"{v}"' for v in values]))
            try:
                self.sock.sendto(answer.to_wire(), peer)
            except OSError:
                pass


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Pebble:
    """One pebble process; ``directory`` is its ACME directory URL."""

    def __init__(self, workdir: Path, dns_address: str):
        self.workdir = workdir
        self.dns_address = dns_address
        self.port, self.management_port = free_port(), free_port()
        self.directory = f"https://localhost:{self.port}/dir"
        self.api_ca = workdir / "api-ca.crt"
        self.proc: subprocess.Popen | None = None

    def _certificates(self) -> None:
        w = self.workdir
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", "api-ca.key", "-out", "api-ca.crt", "-days", "2", "-subj", "/CN=airlock test ACME API CA",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=w)
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "api.key",
                 "-out", "api.csr", "-subj", "/CN=localhost", cwd=w)
        (w / "api.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        _openssl("x509", "-req", "-in", "api.csr", "-CA", "api-ca.crt", "-CAkey", "api-ca.key", "-CAcreateserial",
                 "-out", "api.crt", "-days", "2", "-extfile", "api.ext", cwd=w)

    def start(self, timeout: float = 30.0) -> "Pebble":
        binary = shutil.which("pebble")
        if not binary:
            raise RuntimeError("pebble not found: install the Debian package pebble (tools/testbed/install-packages.sh)")
        self._certificates()
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(self.workdir / "api.crt"),
            "privateKey": str(self.workdir / "api.key"),
            # Ports pebble's validator would dial for http-01/tls-alpn-01: unused with dns-01.
            "httpPort": 5002, "tlsPort": 5001,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }}
        (self.workdir / "pebble.json").write_text(json.dumps(config))
        log = open(self.workdir / "pebble.log", "wb")  # noqa: SIM115 (kept open for the process)
        env = {**os.environ,
               "PEBBLE_VA_NOSLEEP": "1",        # no random sleep before each validation
               "PEBBLE_WFE_NONCEREJECT": "0",   # no deliberately rejected nonces
               "PEBBLE_AUTHZREUSE": "0"}        # every order validates again (renewals too)
        self.proc = subprocess.Popen([binary, "-config", str(self.workdir / "pebble.json"), "-dnsserver", self.dns_address],
                                     stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir)
        context = ssl.create_default_context(cafile=str(self.api_ca))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pebble exited: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(self.directory, timeout=2, context=context):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"pebble did not answer on {self.directory} within {timeout} s")

    def log(self) -> str:
        return (self.workdir / "pebble.log").read_text(errors="replace")

    def issuing_roots(self) -> str:
        """PEM of the root and intermediate pebble signs with (management API)."""
        context = ssl.create_default_context(cafile=str(self.api_ca))
        pems = []
        for path in ("roots/0", "intermediates/0"):
            with urllib.request.urlopen(f"https://localhost:{self.management_port}/{path}", timeout=10,
                                        context=context) as resp:
                pems.append(resp.read().decode())
        return "".join(pems)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
