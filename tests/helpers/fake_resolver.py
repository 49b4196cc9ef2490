"""A resolver on loopback for the tests of the DNS probes (tools/probes/reach.py, the
stand-in's and fake-dns's query code), which query port 53 as a resolver listens: UDP on
port 53 of a loopback address of its own (127.x.y.z), so that tests in parallel do not meet.
Binding port 53 needs root (the test stages run as root); elsewhere the test is skipped."""
from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

import dns.message
import pytest

from helpers.modules import load_module

# The answers are the test resolver's own (tools/standin/fake-dns/fake_dns.py).
FAKE_DNS = load_module(Path(__file__).resolve().parents[2] / "tools" / "standin" / "fake-dns" / "fake_dns.py")


class FakeResolver:
    """Answers each query from `records`, name -> addresses (IPv4 ones answer A, IPv6 ones
    AAAA), None: no answer at all (a silent resolver), or "echo": the query back behind a
    prefix, as the lab's decoy answers on its UDP ports (not a DNS message); an unknown name
    is NXDOMAIN."""

    def __init__(self, records: dict[str, list[str] | str | None]):
        self.records = records
        self.addresses = {name: value for name, value in records.items() if isinstance(value, list)}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(20):
            self.address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
            try:
                self.sock.bind((self.address, 53))
                break
            except PermissionError:
                self.sock.close()
                pytest.skip("binding port 53 needs root (the probes query port 53, as a resolver listens)")
            except OSError:
                continue
        else:
            raise OSError("no free loopback address for a fake resolver")
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            name = dns.message.from_wire(wire).question[0].name.to_text(omit_final_dot=True)
            addresses = self.records.get(name, [])
            if addresses is None:
                continue
            if addresses == "echo":
                self.sock.sendto(b"decoy echo: " + wire, peer)
                continue
            self.sock.sendto(FAKE_DNS.respond(wire, self.addresses), peer)

    def close(self):
        self.sock.close()
