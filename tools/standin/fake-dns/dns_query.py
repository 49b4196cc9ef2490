#!/usr/bin/env python3
"""One DNS query for tests (dnspython), with a result a test can tell apart: an answer
(with its rcode), a block by the local firewall (the kernel refuses the send, EPERM, or an
ICMP admin-prohibited comes back on the connected socket), another error (e.g. nothing
listens: connection refused), or a timeout.

    dns_query.py SERVER NAME [TYPE] [--tcp] [--timeout SECONDS]

Prints one JSON line: {"outcome": "answer", "rcode": "NOERROR", "answers": ["10.0.0.1"],
"cnames": ["edge.cdn.example"]} | {"outcome": "blocked", "error": "..."} |
{"outcome": "error", "error": "..."} | {"outcome": "timeout", "error": "..."}.
"""
from __future__ import annotations

import argparse
import errno
import json
import socket

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype


def query(server: str, name: str, rdtype: str = "A", tcp: bool = False, timeout: float = 3.0) -> dict:
    message = dns.message.make_query(name, rdtype)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            # Connected, so an ICMP error (the firewall's reject) is reported, not a timeout.
            sock.connect((server, 53))
            sock.setblocking(False)
            if tcp:
                reply = dns.query.tcp(message, server, timeout=timeout, sock=sock)
            else:
                reply = dns.query.udp(message, server, timeout=timeout, sock=sock)
    except dns.exception.Timeout as exc:
        return {"outcome": "timeout", "error": f"{type(exc).__name__}: {exc}"}
    except socket.timeout as exc:
        return {"outcome": "timeout", "error": f"{type(exc).__name__}: {exc}"}
    except OSError as exc:
        # EPERM/EACCES: a netfilter drop or reject on this host's output path refused the
        # send; EHOSTUNREACH: its reject (admin-prohibited) came back on the socket.
        blocked = exc.errno in (errno.EPERM, errno.EACCES, errno.EHOSTUNREACH)
        return {"outcome": "blocked" if blocked else "error", "error": f"{type(exc).__name__}: {exc}"}
    answers, cnames = [], []
    for rrset in reply.answer:
        for rdata in rrset:
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                answers.append(rdata.to_text())
            elif rrset.rdtype == dns.rdatatype.CNAME:
                cnames.append(rdata.target.to_text(omit_final_dot=True))
    return {"outcome": "answer", "rcode": dns.rcode.to_text(reply.rcode()), "answers": answers, "cnames": cnames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server")
    parser.add_argument("name")
    parser.add_argument("type", nargs="?", default="A")
    parser.add_argument("--tcp", action="store_true")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    print(json.dumps(query(args.server, args.name, args.type, args.tcp, args.timeout)))


if __name__ == "__main__":
    main()
