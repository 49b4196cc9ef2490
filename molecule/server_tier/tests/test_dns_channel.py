"""The DNS channel of the composed server is closed: the host resolves through its local
allow-listing resolver (unbound, dns_resolver role), which answers the LLM endpoint's name
and refuses any other, and only unbound's user may query the scenario's resolver; the
maintenance window's name resolves while the window is open and not after it closes.

Each block sits beside a positive control: the same query from where it must succeed (as
unbound's user, from the proxy container, or while the window is open). Queries go through
tools/standin/fake-dns/dns_query.py (dnspython), which tells a firewall block (the kernel
refuses the send) from a timeout.
"""
from __future__ import annotations

import json
import shlex

import pytest
import testinfra

from tier import DECOY_IP, LLM_IP, wait_for

server = testinfra.get_host("docker://server_tier-server")
llm = testinfra.get_host("docker://server_tier-llm")
proxy = testinfra.get_host("docker://server_tier-proxy")
QUERY = "/usr/local/lib/airlock-test/dns_query.py"
RECORDS = "/etc/airlock-test-dns.json"
LOCAL = "127.0.0.1"
MIRROR = "mirror.airlock.example"  # the name of the window's destination test-mirror-by-name
DECOY_NAME = "decoy.airlock.example"  # known to the scenario's resolver, never approved


def query(where, server_address: str, name: str, user: str | None = None, tcp: bool = False) -> dict:
    prefix = f"runuser -u {user} -- " if user else ""
    return json.loads(where.check_output(f"{prefix}python3 {QUERY} {server_address} {shlex.quote(name)}" + (" --tcp" if tcp else "")))


def answered(result: dict, rcode: str = "NOERROR") -> bool:
    return result["outcome"] == "answer" and result["rcode"] == rcode


@pytest.fixture(scope="module", autouse=True)
def resolver_records():
    """The scenario's resolver also knows the window's name and a decoy name (both the
    decoy host's address); the records are put back afterwards."""
    original = llm.check_output(f"cat {RECORDS}")
    records = {**json.loads(original), MIRROR: [DECOY_IP], DECOY_NAME: [DECOY_IP]}
    llm.check_output(f"echo {shlex.quote(json.dumps(records))} > {RECORDS}")
    yield
    llm.check_output(f"echo {shlex.quote(original)} > {RECORDS}")


def test_host_resolves_the_llm_name_and_refuses_a_decoy():
    resolv = server.file("/etc/resolv.conf").content_string
    assert [line for line in resolv.splitlines() if line.startswith("nameserver")] == ["nameserver 127.0.0.1"], resolv
    # Control: any process of the host (unprivileged too) resolves the LLM endpoint's name.
    assert server.check_output("runuser -u nobody -- getent hosts llm.airlock.test").split()[0] == LLM_IP
    result = query(server, LOCAL, "llm.airlock.test")
    assert answered(result) and result["answers"] == [LLM_IP], result
    # The scenario's resolver knows the decoy name (asked as unbound's user, the only one
    # allowed to ask it); through unbound it is refused, for root and for anyone else.
    direct = query(server, LLM_IP, DECOY_NAME, user="unbound")
    assert answered(direct) and direct["answers"] == [DECOY_IP], f"positive control: the resolver does not know the decoy: {direct}"
    for user in (None, "nobody"):
        assert answered(query(server, LOCAL, DECOY_NAME, user=user), "REFUSED"), f"unbound answered the decoy to {user or 'root'}"
    assert server.run(f"getent hosts {DECOY_NAME}").rc != 0, "the host resolved the decoy name"


def reached(result: dict) -> bool:
    """The resolver's host answered: a DNS answer, or its kernel refused the TCP connection
    (the scenario's resolver serves UDP only; the Molecule dns_resolver scenario's upstream
    answers TCP too)."""
    return result["outcome"] == "answer" or "Connection refused" in result.get("error", "")


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_only_unbound_queries_the_resolver(tcp):
    control = query(server, LLM_IP, "llm.airlock.test", user="unbound", tcp=tcp)
    if tcp:
        assert reached(control), f"positive control: unbound's user does not reach the resolver's host over TCP: {control}"
    else:
        assert answered(control) and control["answers"] == [LLM_IP], f"positive control: unbound's user is refused: {control}"
    # An unprivileged process, the LLM gateway's user (which reaches the LLM), and root.
    for user in ("nobody", "airlock-llm", None):
        result = query(server, LLM_IP, "llm.airlock.test", user=user, tcp=tcp)
        assert result["outcome"] == "blocked", f"{user or 'root'} queried the resolver directly: {result}"


def test_dockers_embedded_resolver_is_closed_to_the_host():
    """The server host is a container on a user-defined network: Docker's embedded resolver
    (127.0.0.11, DNAT on loopback) answers there, and would forward any name, for any
    process; the firewall lets DNS on loopback go to unbound only."""
    control = query(proxy, "127.0.0.11", "server_tier-llm")
    assert answered(control) and control["answers"] == [LLM_IP], f"positive control: Docker's resolver does not answer the proxy: {control}"
    for user in ("nobody", None):
        result = query(server, "127.0.0.11", "server_tier-llm", user=user)
        assert result["outcome"] == "blocked", f"{user or 'root'} queried Docker's embedded resolver: {result}"


def test_maintenance_name_resolves_only_while_the_window_is_open():
    assert answered(query(server, LOCAL, MIRROR), "REFUSED"), "the window's name resolves while it is closed"
    try:
        opened = server.run("airlock-egress-sets --open test-mirror-by-name")
        assert opened.rc == 0, opened.stdout + opened.stderr
        result = query(server, LOCAL, MIRROR, user="nobody")
        assert answered(result) and result["answers"] == [DECOY_IP], result
        # The window resolved its name through unbound and opened its address: the host
        # reaches the mirror by name.
        page = server.run(f"curl -sS -m 5 http://{MIRROR}:9000/")
        assert page.rc == 0 and "decoy" in page.stdout, page.stderr
    finally:
        closed = server.run("airlock-egress-sets --close")
    assert closed.rc == 0, closed.stdout + closed.stderr
    assert answered(query(server, LOCAL, MIRROR), "REFUSED"), "the window's name still resolves after it closed"
    assert server.run(f"curl -sS -m 5 http://{DECOY_IP}:9000/").rc != 0, "the window's address is still open"
    assert wait_for(lambda: server.run(f"getent hosts {MIRROR}").rc != 0, 10), "the host still resolves the window's name"
