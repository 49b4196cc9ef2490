"""The host's allow-listing resolver, with the egress firewall: approved names (and their
CNAME chains) resolve, every other name is REFUSED and never reaches the upstream, only
unbound's user reaches the upstream, Docker's embedded resolver is closed to the host's
processes, and the maintenance window's names resolve only while it is open.

Every block sits beside a positive control: the same query from where it must succeed (as
unbound's user, from the upstream's own container, or while the window is open). Queries go
through tools/standin/fake-dns/dns_query.py (dnspython), which tells a firewall block (the
kernel refuses the send) from a timeout.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import time
import uuid

import pytest
import testinfra

host = testinfra.get_host("docker://dns_resolver-host")
upstream = testinfra.get_host("docker://dns_resolver-upstream")
UPSTREAM = "10.213.7.53"
LOCAL = "127.0.0.1"
DOCKER_DNS = "127.0.0.11"
QUERY = "/usr/local/lib/airlock-test/dns_query.py"
UPSTREAM_LOG = "/var/log/dns-upstream.log"


def query(where, server: str, name: str, user: str | None = None, tcp: bool = False) -> dict:
    prefix = f"runuser -u {user} -- " if user else ""
    args = " --tcp" if tcp else ""
    return json.loads(where.check_output(f"{prefix}python3 {QUERY} {server} {shlex.quote(name)}{args}"))


def answered(result: dict, rcode: str = "NOERROR") -> bool:
    return result["outcome"] == "answer" and result["rcode"] == rcode


def upstream_saw(name: str) -> bool:
    return any(line.split()[0] == name for line in upstream.check_output(f"cat {UPSTREAM_LOG}").splitlines() if line)


def wait_for(func, timeout=30, step=1):
    deadline = time.time() + timeout
    while True:
        result = func()
        if result or time.time() > deadline:
            return result
        time.sleep(step)


# ----------------------------------------------------------------------------- the resolver
def test_unbound_listens_on_loopback_only():
    assert host.service("unbound").is_running and host.service("unbound").is_enabled
    listeners = host.check_output("ss -Hlnut '( sport = :53 )'").splitlines()
    addresses = sorted({line.split()[4] for line in listeners})
    assert addresses == ["127.0.0.1:53"], listeners


def test_host_resolves_through_unbound():
    assert [line for line in host.file("/etc/resolv.conf").content_string.splitlines() if line.startswith("nameserver")] \
        == ["nameserver 127.0.0.1"]
    # Any process of the host, unprivileged too, resolves an approved name (the C library's path).
    assert host.check_output("runuser -u nobody -- getent hosts llm.airlock.example").split()[0] == UPSTREAM


def test_approved_names_resolve_and_others_are_refused_without_leaving_the_host():
    token = uuid.uuid4().hex[:12]
    under_approved = f"x{token}.llm.airlock.example"  # forwarded; the upstream does not know it
    not_approved = f"x{token}.exfil.airlock.example"
    result = query(host, LOCAL, "llm.airlock.example")
    assert answered(result) and result["answers"] == [UPSTREAM], result
    assert answered(query(host, LOCAL, under_approved), "NXDOMAIN"), "a name under an approved one is not forwarded"
    assert answered(query(host, LOCAL, not_approved, user="nobody"), "REFUSED")
    # Positive control of the log: the forwarded name reached the upstream; the refused one never did.
    assert upstream_saw(under_approved), "the upstream's log does not record forwarded names"
    assert not upstream_saw(not_approved), "a refused name was sent to the upstream"


@pytest.mark.parametrize("name", ["decoy.airlock.example", "edge.cdn.example", "airlock.example", "example", "mirror.airlock.example"])
def test_names_not_approved_are_refused(name):
    direct = query(upstream, UPSTREAM, name)
    assert direct["outcome"] == "answer" and direct["rcode"] in ("NOERROR", "NXDOMAIN"), f"positive control: the upstream does not answer {name}"
    assert answered(query(host, LOCAL, name), "REFUSED"), f"unbound answered {name}"
    assert answered(query(host, LOCAL, name, tcp=True), "REFUSED"), f"unbound answered {name} over TCP"


def test_cname_chains_of_approved_names_resolve():
    """An approved name's answer may be a CNAME into a CDN: the chain resolves, whether the
    upstream sends it whole or the target must be looked up on its own; asked directly,
    the target is refused (test_names_not_approved_are_refused, edge.cdn.example)."""
    whole = query(host, LOCAL, "cdn-llm.airlock.example")
    assert answered(whole) and whole["cnames"] == ["edge.cdn.example"] and whole["answers"] == ["10.213.7.54"], whole
    split = query(host, LOCAL, "split-llm.airlock.example")
    assert answered(split) and split["cnames"] == ["edge2.cdn.example"] and split["answers"] == ["10.213.7.55"], split
    assert answered(query(host, LOCAL, "edge2.cdn.example"), "REFUSED")


def test_extra_allowed_name_resolves():
    result = query(host, LOCAL, "extra.airlock.example")
    assert answered(result) and result["answers"] == ["10.213.7.56"], result


# ----------------------------------------------------------------------------- the firewall
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_only_unbounds_user_reaches_the_upstream(tcp):
    name = "decoy.airlock.example"
    control = query(host, UPSTREAM, name, user="unbound", tcp=tcp)
    assert answered(control) and control["answers"] == [UPSTREAM], f"positive control: unbound's user is refused: {control}"
    for user in ("nobody", None):  # an unprivileged process, and root
        blocked = query(host, UPSTREAM, name, user=user, tcp=tcp)
        assert blocked["outcome"] == "blocked", f"{user or 'root'} reached the upstream: {blocked}"


def test_dockers_embedded_resolver_is_closed_to_the_host():
    """The host sits on a user-defined Docker network, so 127.0.0.11 (Docker's embedded
    resolver, DNAT on loopback) would answer and forward names for any process: the egress
    firewall lets DNS on loopback go to 127.0.0.1 only."""
    control = query(upstream, DOCKER_DNS, "dns_resolver-host")
    assert answered(control) and control["answers"] == ["10.213.7.10"], f"positive control: Docker's resolver does not answer: {control}"
    for user in ("nobody", None):
        result = query(host, DOCKER_DNS, "dns_resolver-upstream", user=user)
        assert result["outcome"] == "blocked", f"{user or 'root'} queried Docker's embedded resolver: {result}"


# ----------------------------------------------------------------------------- the window
def sets_show() -> dict:
    return json.loads(host.check_output("airlock-egress-sets --show"))


def test_maintenance_names_resolve_only_while_the_window_is_open():
    assert answered(query(host, LOCAL, "mirror.airlock.example"), "REFUSED"), "the window's name resolves while it is closed"
    try:
        opened = host.run("airlock-egress-sets --open test-mirror")
        assert opened.rc == 0, opened.stdout + opened.stderr
        result = query(host, LOCAL, "mirror.airlock.example", user="nobody")
        assert answered(result) and result["answers"] == [UPSTREAM], result
        # The window resolved its name through unbound: the address is in the window's set.
        assert [f"{UPSTREAM}/32", 9000] in sets_show()["maintenance_v4"]
        assert host.check_output("airlock-dns-allow --show").split() == sorted(
            ["cdn-llm.airlock.example", "extra.airlock.example", "llm.airlock.example", "mirror.airlock.example",
             "split-llm.airlock.example"])
    finally:
        closed = host.run("airlock-egress-sets --close")
    assert closed.rc == 0, closed.stdout + closed.stderr
    assert answered(query(host, LOCAL, "mirror.airlock.example"), "REFUSED"), "the window's name still resolves after close"
    assert sets_show()["maintenance_v4"] == []


def test_maintenance_names_withdrawn_after_the_deadline_by_the_refresh():
    """A window closes itself at its deadline (nft element timeouts); its names stop
    resolving at the first refresh-timer run after it (the bound: one refresh interval)."""
    try:
        assert host.run("airlock-egress-sets --open test-mirror --timeout 4").rc == 0
        assert answered(query(host, LOCAL, "mirror.airlock.example")), "positive control: the open window's name does not resolve"
        time.sleep(5)
        assert sets_show()["maintenance_v4"] == [], "the kernel did not expire the window's addresses"
        host.check_output("systemctl start airlock-egress-refresh.service")
        assert answered(query(host, LOCAL, "mirror.airlock.example"), "REFUSED"), "the name resolves after the deadline and a refresh"
    finally:
        host.run("airlock-egress-sets --close")


def test_open_window_names_survive_an_unbound_restart():
    try:
        assert host.run("airlock-egress-sets --open test-mirror").rc == 0
        host.check_output("systemctl restart unbound")
        assert wait_for(lambda: host.run("unbound-control status").rc == 0, 20)
        assert answered(query(host, LOCAL, "mirror.airlock.example")), "the open window's name was lost by a restart"
    finally:
        host.run("airlock-egress-sets --close")
    assert answered(query(host, LOCAL, "mirror.airlock.example"), "REFUSED")


def test_only_root_sets_the_window_names():
    result = host.run("runuser -u nobody -- unbound-control -c /etc/unbound/unbound.conf local_zone decoy.airlock.example transparent")
    assert result.rc != 0, "an unprivileged user changed unbound's zones"
    assert answered(query(host, LOCAL, "decoy.airlock.example"), "REFUSED")
    assert host.file("/usr/local/sbin/airlock-dns-allow").mode == 0o750


# ----------------------------------------------------------------------------- after a reboot
def test_resolver_and_resolv_conf_back_after_a_host_restart():
    """Docker writes the container's resolv.conf at every start (as a DHCP client would at
    boot): the role's boot unit points it at unbound again, and the window's names are gone."""
    subprocess.run(["docker", "restart", "dns_resolver-host"], check=True, capture_output=True, timeout=120)
    assert wait_for(lambda: host.run("systemctl is-system-running").stdout.strip() in ("running", "degraded"), 90)
    resolv = host.file("/etc/resolv.conf").content_string
    assert [line for line in resolv.splitlines() if line.startswith("nameserver")] == ["nameserver 127.0.0.1"], resolv
    assert wait_for(lambda: answered(query(host, LOCAL, "llm.airlock.example")), 30), "unbound does not answer after the restart"
    assert answered(query(host, LOCAL, "mirror.airlock.example"), "REFUSED")
    assert query(host, UPSTREAM, "llm.airlock.example", user="nobody")["outcome"] == "blocked", "the firewall is not back"
