"""The app's way to the proxy (egress_firewall_app_proxy_routes) in a real kernel, inside
network namespaces this test creates (nothing touches the machine's own ruleset).

OpenHands 1.11.0 calls its sandboxes at the URLs it hands out, the proxy's public URL plus
/runtime/<port>, so the app container must reach the proxy's HTTPS port; a sandbox, run by a
hostile agent, must not. Four namespaces stand in for the server and its neighbours:

    app   --(br-airlock-app)--+
                              fw (the role's ruleset, forwarding) --(prx0)-- proxy 192.0.2.40:443
    sbx   --(docker0)---------+

`fw` holds the role's template rendered with the role's defaults and filter plugins. Its
interfaces toward `app` and `sbx` carry the names the ruleset matches: the app's own bridge
and Docker's default bridge, where OpenHands starts its sandboxes. The proxy answers every
connection with the port it arrived on.

What is proven, each block beside the same probe from the app (the positive control):
- the app reaches the proxy at the address and port it dials for the public URL: the lab's
  published port (192.0.2.40:8443, [2001:db8::40]:8443) and an Elastic IP
  (198.51.100.7:443) arrive at the proxy's HTTPS port 443, and the proxy's own addresses on
  443 work too;
- a sandbox reaches none of them, over IPv4 or IPv6, nor any other port of the proxy: its
  IPv6 path is real (every probe works before the ruleset is loaded, and the app's IPv6
  probes go through the loaded ruleset), so the IPv6 block is not a missing route;
- the app reaches no other port of the proxy and no other address through a route.

Needs root, `ip`, `nft` and `unshare`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from test_egress_firewall_netns import connect, render_ruleset, run

PROXY, EIP, PROXY6 = "192.0.2.40", "198.51.100.7", "2001:db8::40"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft", "unshare")),
    reason="needs root, ip, nft and unshare (network namespaces)")


# Answers each connection with the local port it was accepted on, on ports 443 and 8443.
PROXY_SERVER = """
import selectors, socket
sel = selectors.DefaultSelector()
for port in (443, 8443):
    s = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
    sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        c, _ = key.fileobj.accept()
        c.sendall(str(c.getsockname()[1]).encode())
        c.close()
"""

@pytest.fixture(scope="module")
def net():
    tag = os.getpid()
    ns = {name: f"airlock-{name}-{tag}" for name in ("fw", "app", "sbx", "proxy")}
    for name in ns.values():
        run("ip", "netns", "add", name)
    server = None
    try:
        links = (("app", "br-airlock-app", "10.78.1.1", "10.78.1.2", "fd00:78:1::1", "fd00:78:1::2"),
                 ("sbx", "docker0", "10.78.2.1", "10.78.2.2", "fd00:78:2::1", "fd00:78:2::2"),
                 ("proxy", "prx0", "192.0.2.1", PROXY, "2001:db8::1", PROXY6))
        for peer, fw_dev, fw_ip, peer_ip, fw_ip6, peer_ip6 in links:
            run("ip", "-n", ns["fw"], "link", "add", fw_dev, "type", "veth", "peer", "name", "eth0", "netns", ns[peer])
            run("ip", "-n", ns["fw"], "addr", "add", f"{fw_ip}/24", "dev", fw_dev)
            run("ip", "-n", ns[peer], "addr", "add", f"{peer_ip}/24", "dev", "eth0")
            run("ip", "-n", ns["fw"], "addr", "add", f"{fw_ip6}/64", "dev", fw_dev, "nodad")
            run("ip", "-n", ns[peer], "addr", "add", f"{peer_ip6}/64", "dev", "eth0", "nodad")
            for where, dev in ((ns["fw"], fw_dev), (ns[peer], "eth0"), (ns[peer], "lo")):
                run("ip", "-n", where, "link", "set", dev, "up")
            run("ip", "-n", ns[peer], "route", "add", "default", "via", fw_ip)
            run("ip", "-n", ns[peer], "-6", "route", "add", "default", "via", fw_ip6)
        run("ip", "-n", ns["fw"], "link", "set", "lo", "up")
        run("ip", "netns", "exec", ns["fw"], "sysctl", "-qw", "net.ipv4.ip_forward=1")
        run("ip", "netns", "exec", ns["fw"], "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        server = subprocess.Popen(["ip", "netns", "exec", ns["proxy"], sys.executable, "-c", PROXY_SERVER],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The proxy listening and both address families' neighbours settled, before any probe.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(
                connect(ns[who], addr, 443) == "443" for who in ("app", "sbx") for addr in (PROXY, PROXY6)):
            time.sleep(0.5)
        yield ns
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for name in ns.values():
            run("ip", "netns", "del", name, check=False)


@pytest.fixture(scope="module")
def firewalled(net, tmp_path_factory):
    """The same namespaces, first without the ruleset (every probe must work: the network
    is sound), then with it loaded in `fw`."""
    before = {(who, addr, port): connect(net[who], addr, port)
              for who in ("app", "sbx") for addr, port in ((PROXY, 443), (PROXY, 8443), (PROXY6, 443), (PROXY6, 8443))}
    ruleset = tmp_path_factory.mktemp("app-proxy") / "egress.nft"
    ruleset.write_text(render_ruleset())
    run("ip", "netns", "exec", net["fw"], "nft", "-f", str(ruleset))
    yield net, before
    run("ip", "netns", "exec", net["fw"], "nft", "delete", "table", "inet", "airlock", check=False)


def test_the_network_is_sound_without_the_ruleset(firewalled):
    _, before = firewalled
    assert before == {(who, addr, port): str(port) for who in ("app", "sbx")
                      for addr, port in ((PROXY, 443), (PROXY, 8443), (PROXY6, 443), (PROXY6, 8443))}, before


def test_the_app_reaches_the_proxys_https_port_where_it_dials_the_public_url(firewalled):
    net, _ = firewalled
    assert connect(net["app"], PROXY, 8443) == "443", "the lab's public port must lead to the proxy's 443"
    assert connect(net["app"], EIP, 443) == "443", "an Elastic IP must lead to the proxy's private address"
    assert connect(net["app"], PROXY, 443) == "443"
    assert connect(net["app"], PROXY6, 8443) == "443", "IPv6: the public port must lead to the proxy's 443"
    assert connect(net["app"], PROXY6, 443) == "443"


@pytest.mark.parametrize("address,port", [(PROXY, 443), (PROXY, 8443), (EIP, 443), (PROXY6, 443), (PROXY6, 8443)])
def test_a_sandbox_reaches_the_proxy_nowhere_the_app_does(firewalled, address, port):
    net, _ = firewalled
    assert connect(net["app"], address, port) == "443", "positive control: the app reaches it"
    got = connect(net["sbx"], address, port)
    assert got.startswith("failed"), f"a sandbox reached the proxy at {address}:{port} ({got})"


def test_the_app_reaches_nothing_else_of_the_proxy(firewalled):
    """Only the routes' address and port lead anywhere: the proxy's 8443 itself (it listens
    there in this test) is out of reach, because the route turns 8443 into 443."""
    net, _ = firewalled
    assert connect(net["app"], PROXY, 8443) == "443"
    assert connect(net["app"], EIP, 8443).startswith("failed")
    assert connect(net["app"], "192.0.2.41", 443).startswith("failed")
