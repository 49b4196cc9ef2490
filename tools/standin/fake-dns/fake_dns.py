#!/usr/bin/env python3
"""Tiny authoritative DNS responder for tests (stand-in; messages read and written with
dnspython, the distribution's python3-dnspython).

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

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

TTL = 5


def answer(data: bytes, records_file: str) -> bytes:
    """The answer to the query DATA from the records in RECORDS_FILE, read now."""
    try:
        with open(records_file, encoding="utf-8") as fh:
            records = json.load(fh)
    except (OSError, ValueError):
        records = {}
    return respond(data, records)


def respond(data: bytes, records: dict[str, list[str]]) -> bytes:
    """The answer to the query DATA from RECORDS (name -> addresses): the name's A or AAAA
    addresses, NOERROR without them, NXDOMAIN for a name it does not hold."""
    query = dns.message.from_wire(data)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if not query.question:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    question = query.question[0]
    name = question.name.to_text(omit_final_dot=True).lower()
    records = {k.lower().rstrip("."): v for k, v in records.items()}
    if name not in records:
        response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()
    version = {dns.rdatatype.A: 4, dns.rdatatype.AAAA: 6}.get(question.rdtype)
    wanted = [str(a) for a in map(ipaddress.ip_address, records[name]) if a.version == version]
    if wanted:
        response.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", question.rdtype, wanted))
    return response.to_wire()


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
        except (dns.exception.DNSException, ValueError):
            continue


if __name__ == "__main__":
    main()
