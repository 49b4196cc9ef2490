#!/usr/bin/env python3
"""Upstream resolver stand-in for tests (dnspython): answers A, AAAA and CNAME from a JSON
file read again on every query, over UDP and TCP, and logs every query name it receives.

    {"llm.airlock.test": ["10.213.5.20"], "cdn.airlock.test": {"cname": "edge.cdn.test"},
     "edge.cdn.test": ["10.213.5.21"]}

A name given as {"cname": TARGET} answers with the CNAME followed by the target's records
(the whole chain, as a recursive resolver does); {"cname": TARGET, "chain": false} answers
the CNAME alone, so the asking resolver must look the target up itself. Unknown names:
NXDOMAIN. It never forwards anywhere.

    dns_upstream.py --records FILE [--listen ADDRESS]... [--port 53] [--log FILE]
"""
from __future__ import annotations

import argparse
import json
import socket
import socketserver
import threading

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

TTL = 5


def load(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return {k.lower().rstrip("."): v for k, v in json.load(fh).items()}
    except (OSError, ValueError):
        return {}


def respond(wire: bytes, records_file: str, log_file: str | None) -> bytes:
    query = dns.message.from_wire(wire)
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.AA | dns.flags.RA
    question = query.question[0]
    qname, qtype = question.name.to_text(omit_final_dot=True).lower(), question.rdtype
    if log_file:
        with open(log_file, "a", encoding="utf-8") as fh:
            fh.write(f"{qname} {dns.rdatatype.to_text(qtype)}\n")
    records, name, seen = load(records_file), qname, set()
    if name not in records:
        reply.set_rcode(dns.rcode.NXDOMAIN)
        return reply.to_wire()
    while name in records and name not in seen:
        seen.add(name)
        value = records[name]
        owner = dns.name.from_text(name)
        if isinstance(value, dict):
            target = value["cname"].lower().rstrip(".")
            reply.answer.append(dns.rrset.from_text(owner, TTL, "IN", "CNAME", target + "."))
            if qtype == dns.rdatatype.CNAME or value.get("chain", True) is False:
                break
            name = target
            continue
        wanted = "A" if qtype == dns.rdatatype.A else "AAAA" if qtype == dns.rdatatype.AAAA else None
        addresses = [a for a in value if (":" in a) == (wanted == "AAAA")] if wanted else []
        if addresses:
            reply.answer.append(dns.rrset.from_text_list(owner, TTL, "IN", wanted, addresses))
        break
    return reply.to_wire()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", required=True)
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--log")
    args = parser.parse_args()

    class UDP(socketserver.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            try:
                sock.sendto(respond(data, args.records, args.log), self.client_address)
            except Exception:  # noqa: BLE001 - a malformed query gets no answer
                pass

    class TCP(socketserver.StreamRequestHandler):
        def handle(self):
            try:
                size = int.from_bytes(self.rfile.read(2), "big")
                out = respond(self.rfile.read(size), args.records, args.log)
                self.wfile.write(len(out).to_bytes(2, "big") + out)
            except Exception:  # noqa: BLE001 - a malformed query gets no answer
                pass

    servers = []
    for address in args.listen or ["0.0.0.0"]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        for base, handler in ((socketserver.ThreadingUDPServer, UDP), (socketserver.ThreadingTCPServer, TCP)):
            cls = type(base.__name__, (base,), {"address_family": family, "allow_reuse_address": True, "daemon_threads": True})
            servers.append(cls((address, args.port), handler))
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
