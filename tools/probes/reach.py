#!/usr/bin/env python3
"""Tell whether this host (or container) can reach a destination; print one JSON line.

    reach.py tcp HOST PORT [RESOLVER]   TCP connect
    reach.py udp HOST PORT [RESOLVER]   UDP datagram that the decoy answers
                                  (RESOLVER: look a HOST name up there, not in resolv.conf)
    reach.py dns RESOLVER NAME    a DNS A query sent straight to RESOLVER
    reach.py http URL [BEARER]    an HTTP GET; any HTTP status counts as reached

Exit status 0 = reached, 1 = not reached (blocked, refused or timed out), 2 = usage error.
Used by playbooks/validate.yml on the OpenHands host and inside sandbox containers, so it
needs nothing but a Python 3 standard library.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import sys
import urllib.error
import urllib.request

TIMEOUT = float(os.environ.get("REACH_TIMEOUT", "5"))


def _query(resolver: str, name: str) -> bytes:
    query = struct.pack(">HHHHHH", 0x4A4C, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    query += struct.pack(">HH", 1, 1)
    sock = socket.socket(socket.AF_INET6 if ":" in resolver else socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    sock.sendto(query, (resolver, 53))
    data, _ = sock.recvfrom(1500)
    return data


def _skip_name(data: bytes, at: int) -> int:
    while data[at]:
        if data[at] & 0xC0 == 0xC0:
            return at + 2
        at += data[at] + 1
    return at + 1


def lookup(host: str, resolver: str | None) -> str:
    """HOST itself when it is an address or no RESOLVER is given; else its first A record
    as RESOLVER answers it."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return host
    except OSError:
        if not resolver:
            return host
    data = _query(resolver, host)
    answers, at = struct.unpack(">H", data[6:8])[0], _skip_name(data, 12) + 4
    for _ in range(answers):
        at = _skip_name(data, at)
        rtype, _, _, length = struct.unpack(">HHIH", data[at:at + 10])
        at += 10
        if rtype == 1 and length == 4:
            return socket.inet_ntoa(data[at:at + 4])
        at += length
    raise OSError(f"{resolver} has no address for {host}")


def tcp(host: str, port: str, resolver: str | None = None) -> str:
    with socket.create_connection((lookup(host, resolver), int(port)), timeout=TIMEOUT):
        return "connected"


def udp(host: str, port: str, resolver: str | None = None) -> str:
    host = lookup(host, resolver)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    sock.sendto(b"airlock reach probe\n", (host, int(port)))
    data, _ = sock.recvfrom(512)
    return f"answer {len(data)} bytes"


def dns(resolver: str, name: str) -> str:
    return f"answer {len(_query(resolver, name))} bytes"


def http(url: str, bearer: str = "") -> str:
    req = urllib.request.Request(url)
    if bearer:
        req.add_header("Authorization", f"Bearer {bearer}")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return f"HTTP {resp.status}"
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}"


def main(argv: list[str]) -> int:
    probes = {"tcp": tcp, "udp": udp, "dns": dns, "http": http}
    if len(argv) < 3 or argv[1] not in probes:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        detail, reached = probes[argv[1]](*argv[2:]), True
    except (OSError, ValueError) as err:
        detail, reached = f"{type(err).__name__}: {err}", False
    print(json.dumps({"probe": argv[1], "target": argv[2:3] + argv[3:4], "reached": reached, "detail": detail}))
    return 0 if reached else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
