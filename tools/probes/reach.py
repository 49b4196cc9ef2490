#!/usr/bin/env python3
"""Tell whether this host (or container) can reach a destination; print one JSON line.

    reach.pyz tcp HOST PORT [RESOLVER]   TCP connect
    reach.pyz udp HOST PORT [RESOLVER]   UDP datagram that the decoy answers
                                  (RESOLVER: look a HOST name up there, not in resolv.conf)
    reach.pyz dns RESOLVER NAME    a DNS A query sent straight to RESOLVER; any reply (an
                                  answer whatever its rcode, or not a DNS answer at all)
                                  counts as reached
    reach.pyz http URL [BEARER]    an HTTP GET; any HTTP status counts as reached

Exit status 0 = reached, 1 = not reached (blocked, refused or timed out), 2 = usage error,
3 = the probe itself failed (a bug, or dnspython failing on this Python): neither reached
nor not, so that no block check passes on a probe that never ran ("reached": null).
Used by playbooks/validate.yml on the OpenHands host and inside sandbox containers, which
may not have dnspython: the playbook ships this file as the __main__ of one zipapp,
reach.pyz, beside the controller's own pinned dnspython (tools/probes/build_reach.py).
So it needs a Python 3 standard library and nothing else on the target.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request

TIMEOUT = float(os.environ.get("REACH_TIMEOUT", "5"))

# dnspython is imported by the DNS code only: the other probes start faster without it (a
# zipapp's modules are compiled at every start) and need nothing but the standard library.


class DNSError(OSError):
    """No usable answer from the resolver: a timeout, or a reply that is not this query's."""


class NotAnAnswer(DNSError):
    """A reply came back, but it is not a DNS answer to this query (a decoy's echo, say)."""


def _query(resolver: str, name: str):
    """RESOLVER's answer (a dns.message.Message) to an A query for NAME over UDP; dnspython
    checks that the reply answers this query (its id and question)."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rdatatype

    try:
        return dns.query.udp(dns.message.make_query(name, dns.rdatatype.A), resolver, timeout=TIMEOUT)
    except dns.exception.Timeout as err:
        raise DNSError(f"{type(err).__name__}: {err}") from err
    except dns.exception.DNSException as err:
        raise NotAnAnswer(f"{type(err).__name__}: {err}") from err


def lookup(host: str, resolver: str | None) -> str:
    """HOST itself when it is an address or no RESOLVER is given; else its first A record
    as RESOLVER answers it (after any CNAME)."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return host
    except OSError:
        if not resolver:
            return host
    import dns.rdatatype

    for rrset in _query(resolver, host).answer:
        if rrset.rdtype == dns.rdatatype.A:
            for rdata in rrset:
                return rdata.address
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


def dns_probe(resolver: str, name: str) -> str:
    """Any reply from RESOLVER counts as reached: an answer, whatever its rcode, or a datagram
    that is no answer to this query (the way out is open all the same: a block check must not
    pass on a resolver that replies oddly); only no reply at all (timeout, refused send) is
    not reached."""
    import dns.rcode

    try:
        reply = _query(resolver, name)
    except NotAnAnswer as err:
        return f"a reply that is not a DNS answer to this query ({err})"
    return f"answer {dns.rcode.to_text(reply.rcode())}, {sum(len(rrset) for rrset in reply.answer)} records"


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
    probes = {"tcp": tcp, "udp": udp, "dns": dns_probe, "http": http}
    if len(argv) < 3 or argv[1] not in probes:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        detail, reached = probes[argv[1]](*argv[2:]), True
    except (OSError, ValueError) as err:
        detail, reached = f"{type(err).__name__}: {err}", False
    except Exception as err:  # noqa: BLE001 - any other failure is the probe's own, not the network's
        detail, reached = f"the probe failed: {type(err).__name__}: {err}", None
    print(json.dumps({"probe": argv[1], "target": argv[2:3] + argv[3:4], "reached": reached, "detail": detail}))
    return {True: 0, False: 1, None: 3}[reached]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
