#!/usr/bin/env python3
"""Tiny authoritative DNS responder for tests (stand-in; Python standard library only).

Answers A and AAAA queries over UDP from a JSON file mapping names to addresses, read
again on every query, so a test changes an answer by rewriting the file:

    {"llm.airlock.test": ["10.213.5.20"], "other.test": ["fd00::1"]}

Other names get NXDOMAIN; it never forwards anywhere.

    fake_dns.py [--host ::] [--port 53] --records FILE
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import struct


def parse_question(data: bytes) -> tuple[str, int, int]:
    pos, labels = 12, []
    while data[pos]:
        labels.append(data[pos + 1:pos + 1 + data[pos]].decode("ascii", "replace"))
        pos += data[pos] + 1
    qtype = struct.unpack("!H", data[pos + 1:pos + 3])[0]
    return ".".join(labels).lower(), qtype, pos + 5


def answer(data: bytes, records_file: str) -> bytes:
    qid, flags = struct.unpack("!HH", data[:4])
    name, qtype, qend = parse_question(data)
    try:
        with open(records_file, encoding="utf-8") as fh:
            records = {k.lower().rstrip("."): v for k, v in json.load(fh).items()}
    except (OSError, ValueError):
        records = {}
    addresses = [ipaddress.ip_address(a) for a in records.get(name, [])]
    wanted = [a for a in addresses if (qtype == 1 and a.version == 4) or (qtype == 28 and a.version == 6)]
    rcode = 0 if name in records else 3
    header = struct.pack("!HHHHHH", qid, 0x8400 | (flags & 0x0100) | rcode, 1, len(wanted), 0, 0)
    out = header + data[12:qend]
    for addr in wanted:
        out += struct.pack("!HHHIH", 0xC00C, qtype, 1, 5, len(addr.packed)) + addr.packed
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="::")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--records", required=True)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((args.host, args.port))
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(data, args.records), peer)
        except (IndexError, struct.error, ValueError):
            continue


if __name__ == "__main__":
    main()
