"""The egress firewall's sets tool (roles/egress_firewall/files/airlock-egress-sets) against
a real kernel, inside network namespaces this test creates (nothing touches the machine's
own ruleset).

The role's template is rendered with the role's own filter plugins (Jinja2 with the
role's defaults, as Ansible's template module renders it: trim_blocks). The maintenance
sets are declared `flags interval, timeout` (checked: a template without the flag fails);
the older declaration, `flags interval`, is rendered by taking the flag away.

What is proven:
- drift: an `accept` inserted at the top of every chain of `inet airlock` (the base chains
  input, output, forward and every regular chain) is reported by --check and removed by
  --repair and by the timer's run, with an AIRLOCK-EGRESS-DRIFT line; the LLM set and an
  open window keep their addresses. Positive control: the unmodified table is clean, and
  the dynamic sets' elements are not drift. Other tampering (policy, dormant table,
  deleted table, flushed chain, extra chain) is caught too. A ruleset file changed since
  the table was verified (a deployment in progress) is reloaded without a tamper alert.
- the maintenance window closes by itself: its elements carry an nft timeout and vanish
  from the kernel at the deadline (listed and by a TCP connection through a veth pair,
  with positive controls); the timer's run never opens it again from the state in /run
  after its deadline (nor from an older state file without a deadline); a repair keeps an
  open window only while it is before its deadline.
- a destination that is not in the configuration yet (renamed or added in the inventory)
  opens when its definition is passed with --destinations, and the timer keeps it open.
- host services (egress_firewall_host_services): root reaches the one given by cidr and the
  one given by name (resolved by the sets tool into host_services_v4 through the
  namespace's own /etc/hosts, /etc/netns/NAME/hosts), an unprivileged user (nobody) does
  not, by the same probe to the same address and port; root does not reach an address or
  port pairing the list does not name. Positive control: with the table deleted, every
  probe connects. Drift repair keeps the set's elements, and they are no drift.

Needs root, `ip`, `nft` and `unshare`.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "egress_firewall"
TOOL = ROLE / "files" / "airlock-egress-sets"
PEER_IP, HOST_IP, MIRROR_PORT = "10.77.0.2", "10.77.0.1", 9000
# Host services: one by cidr (a second address of the peer), one by name (the peer's address,
# through the firewalled namespace's /etc/hosts); a listener on both ports at every address.
SERVICE_IP, SERVICE_PORT, SERVICE_NAME, NAMED_PORT = "10.77.0.3", 9443, "logs.airlock.test", 9444
HOST_SERVICES = [{"name": "backups", "cidrs": [f"{SERVICE_IP}/32", "2001:db8::9/128"], "port": SERVICE_PORT},
                 {"name": "logs", "hosts": [SERVICE_NAME], "port": NAMED_PORT}]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft", "unshare")),
    reason="needs root, ip, nft and unshare (network namespaces)")


def run(*argv, check=True, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=check, **kw)


# One TCP connection, printing what the server sent first, or "failed <error>" (run inside a
# namespace by connect(); the other namespace tests use it too).
CONNECT_PROBE = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as c:
        print(c.recv(16).decode() or "empty")
except OSError as exc:
    print("failed", type(exc).__name__)
"""


def connect(ns: str, address: str, port: int, uid: int | None = None) -> str:
    """What `ns` gets connecting to address:port: the server's first bytes, or 'failed ...';
    as user id `uid` (setpriv, the system's python3) instead of root when given."""
    if uid is None:
        return run("ip", "netns", "exec", ns, sys.executable, "-c", CONNECT_PROBE, address, str(port)).stdout.strip()
    return run("ip", "netns", "exec", ns, "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
               "/usr/bin/python3", "-c", CONNECT_PROBE, address, str(port)).stdout.strip()


def render_ruleset(timeout_flag: bool = True) -> str:
    """egress.nft.j2 rendered with the role's defaults, its filter plugins and test values."""
    import jinja2  # noqa: PLC0415 (the venv's, as Ansible's)
    import yaml  # noqa: PLC0415

    filters = load_module(ROLE / "filter_plugins" / "egress_firewall.py", "egress_firewall_filters")
    env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters.update(filters.FilterModule().filters())
    values = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values.update({
        "ansible_managed": "rendered by tests/host/test_egress_firewall_netns.py",
        "egress_firewall_llm_endpoints": [{"name": "fixed", "cidrs": ["192.0.2.20/32"], "port": 8000},
                                          {"name": "by-name", "hosts": ["localhost"], "port": 8000}],
        "egress_firewall_dns_servers": ["192.0.2.53"],
        "egress_firewall_ntp_servers": ["192.0.2.123"],
        "egress_firewall_proxy_addresses": ["192.0.2.40", "2001:db8::40"],
        "egress_firewall_host_services": HOST_SERVICES,
        # The app's way to the proxy: its public port (translated) and an Elastic IP.
        "egress_firewall_app_proxy_routes": [{"address": "192.0.2.40", "port": 8443},
                                             {"address": "198.51.100.7", "port": 443},
                                             {"address": "2001:db8::40", "port": 8443}],
    })
    values["__egress_firewall_ssh_sources"] = values["egress_firewall_proxy_addresses"]
    # Variables a newer template may use that this checkout's defaults do not define yet are
    # an error (StrictUndefined): the test then says which one.
    text = env.from_string((ROLE / "templates" / "egress.nft.j2").read_text()).render(**values)
    # The template as it is (its window sets must carry the timeout flag: a test checks it);
    # only the older declaration is made here, by taking the flag away.
    if not timeout_flag:
        decl = re.compile(r"(set maintenance_v[46] \{[^}]*?flags )([^\n]*)")
        text = decl.sub(lambda m: m.group(1) + ", ".join(f for f in re.split(r",\s*", m.group(2)) if f != "timeout"), text)
    return text


@pytest.fixture(scope="module")
def namespaces():
    """Two namespaces joined by a veth pair: `host` (the firewall) and `peer` (a mirror, and
    the host services' listeners). `ip netns exec` gives `host` its own /etc/hosts, where the
    named host service resolves to the peer."""
    host, peer = f"airlock-eg-{os.getpid()}", f"airlock-mr-{os.getpid()}"
    etc_netns = Path("/etc/netns")
    made_etc_netns = not etc_netns.exists()
    (etc_netns / host).mkdir(parents=True)
    (etc_netns / host / "hosts").write_text(Path("/etc/hosts").read_text() + f"\n{PEER_IP} {SERVICE_NAME}\n")
    run("ip", "netns", "add", host)
    run("ip", "netns", "add", peer)
    listeners = []
    try:
        run("ip", "-n", host, "link", "add", "eg0", "type", "veth", "peer", "name", "mr0", "netns", peer)
        for ns, dev, addr in ((host, "eg0", HOST_IP), (peer, "mr0", PEER_IP)):
            run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", peer, "addr", "add", f"{SERVICE_IP}/24", "dev", "mr0")
        listeners.append(subprocess.Popen(  # a mirror: accepts TCP on port 9000 in the peer namespace
            ["ip", "netns", "exec", peer, sys.executable, "-c",
             "import socket\ns = socket.create_server(('%s', %d))\nwhile True:\n    c, _ = s.accept(); c.close()" % (PEER_IP, MIRROR_PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in (SERVICE_PORT, NAMED_PORT):  # the host services: "ok" on every address of the peer
            listeners.append(subprocess.Popen(
                ["ip", "netns", "exec", peer, sys.executable, "-c",
                 "import socket\ns = socket.create_server(('0.0.0.0', %d))\nwhile True:\n"
                 "    c, _ = s.accept(); c.sendall(b'ok'); c.close()" % port],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        yield host
    finally:
        for listener in listeners:
            listener.kill()
            listener.wait()
        run("ip", "netns", "del", host, check=False)
        run("ip", "netns", "del", peer, check=False)
        shutil.rmtree(etc_netns / host, ignore_errors=True)
        if made_etc_netns:
            with contextlib.suppress(OSError):
                etc_netns.rmdir()


class Firewall:
    def __init__(self, ns: str, tmp: Path, timeout_flag: bool = True):
        self.ns, self.tmp = ns, tmp
        self.ruleset = tmp / "egress.nft"
        self.ruleset.write_text(render_ruleset(timeout_flag))
        self.config = tmp / "egress.json"
        self.config.write_text(json.dumps({
            "llm_hosts": [{"name": "by-name", "hosts": ["localhost"], "ports": [8000]}],
            "host_services": [{"name": "logs", "hosts": [SERVICE_NAME], "ports": [NAMED_PORT]}],
            "maintenance": [{"name": "old-mirror", "cidrs": [f"{PEER_IP}/32"], "ports": [MIRROR_PORT]}],
            "maintenance_timeout": 1800,
            "ruleset": str(self.ruleset),
        }))
        self.state = tmp / "state"
        self.events = tmp / "events.log"
        self.nft("-f", str(self.ruleset))  # what airlock-egress.service does
        first = self.tool()  # what its ExecStartPost does: the refresh fills the sets
        assert first.returncode == 0, first.stderr
        assert self.elems("llm_hosts_v4") == [["127.0.0.1/32", 8000]]
        assert self.elems("host_services_v4") == [[f"{PEER_IP}/32", NAMED_PORT]]

    def nft(self, *args: str, check=True) -> str:
        return run("ip", "netns", "exec", self.ns, "nft", *args, check=check).stdout

    def tool(self, *args: str) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", self.ns, sys.executable, str(TOOL), "--config", str(self.config),
                   "--state-dir", str(self.state), *args, check=False,
                   env={**os.environ, "AIRLOCK_EGRESS_EVENT_LOG": str(self.events)})

    def elems(self, set_name: str, with_expiry: bool = False) -> list:
        data = json.loads(self.nft("-j", "list", "set", "inet", "airlock", set_name))["nftables"]
        out = []
        for e in next(i["set"] for i in data if "set" in i).get("elem", []):
            expires = e["elem"].get("expires") if "elem" in e else None
            val = e["elem"]["val"] if "elem" in e else e
            addr = val["concat"][0]
            addr = f"{addr['prefix']['addr']}/{addr['prefix']['len']}" if isinstance(addr, dict) else f"{addr}/32"
            out.append([addr, val["concat"][1]] + ([expires] if with_expiry else []))
        return sorted(out)

    def chains(self, base: bool | None = None) -> list:
        """Names of the table's chains: all, only base chains (True) or only regular ones (False)."""
        data = json.loads(self.nft("-j", "list", "table", "inet", "airlock"))["nftables"]
        return [i["chain"]["name"] for i in data if "chain" in i and (base is None or ("hook" in i["chain"]) == base)]

    def events_text(self) -> str:
        return self.events.read_text() if self.events.exists() else ""

    def connects(self) -> bool:
        """A TCP connection from the firewalled namespace to the mirror in the peer one."""
        probe = ("import socket, sys\ntry:\n    socket.create_connection(('%s', %d), timeout=2).close()\n"
                 "except OSError:\n    sys.exit(1)" % (PEER_IP, MIRROR_PORT))
        return run("ip", "netns", "exec", self.ns, sys.executable, "-c", probe, check=False).returncode == 0


@pytest.fixture()
def fw(namespaces, tmp_path):
    firewall = Firewall(namespaces, tmp_path)
    yield firewall
    run("ip", "netns", "exec", namespaces, "nft", "delete", "table", "inet", "airlock", check=False)


@pytest.fixture()
def fw_without_timeouts(namespaces, tmp_path):
    """The ruleset as the template declared the maintenance sets before `flags timeout`."""
    firewall = Firewall(namespaces, tmp_path, timeout_flag=False)
    yield firewall
    run("ip", "netns", "exec", namespaces, "nft", "delete", "table", "inet", "airlock", check=False)


# The filter hooks, and the nat chain that sends the app's calls of the public URL to the
# proxy (egress_firewall_app_proxy_routes): a rule slipped in there could send them anywhere.
BASE_CHAINS = ["input", "output", "forward", "app_to_proxy"]


# ----------------------------------------------------------------------------- drift
def test_rendered_ruleset_declares_the_window_sets_with_timeouts(fw):
    for name in ("maintenance_v4", "maintenance_v6"):
        assert "timeout" in json.loads(fw.nft("-j", "list", "set", "inet", "airlock", name))["nftables"][1]["set"]["flags"]
    assert sorted(fw.chains(base=True)) == sorted(BASE_CHAINS)
    assert len(fw.chains(base=False)) >= 2


def test_unmodified_table_is_clean_and_the_timer_changes_nothing(fw):
    """Positive control: no false drift, and the sets' own elements are not drift."""
    check = fw.tool("--check")
    assert (check.returncode, check.stdout.strip()) == (0, "clean"), check.stdout + check.stderr
    fw.tool("--open", "old-mirror", "--timeout", "60")
    fw.nft("add", "element", "inet", "airlock", "llm_hosts_v4", "{ 198.51.100.7 . 443 }")
    fw.nft("add", "element", "inet", "airlock", "host_services_v4", "{ 198.51.100.9 . 443 }")
    check = fw.tool("--check")
    assert (check.returncode, check.stdout.strip()) == (0, "clean"), check.stdout
    timer = fw.tool()
    assert timer.returncode == 0 and timer.stdout.splitlines()[-1] == "changed", timer.stdout  # the extra addresses went
    assert fw.elems("llm_hosts_v4") == [["127.0.0.1/32", 8000]]
    assert fw.elems("host_services_v4") == [[f"{PEER_IP}/32", NAMED_PORT]]
    again = fw.tool()
    assert again.stdout.splitlines()[-1] == "unchanged", again.stdout
    assert "AIRLOCK-EGRESS-DRIFT" not in fw.events_text()


def _tamper_and_repair(fw, chain):
    window = fw.elems("maintenance_v4")
    before = fw.nft("list", "chain", "inet", "airlock", chain)
    fw.nft("insert", "rule", "inet", "airlock", chain, "accept")
    assert fw.nft("list", "chain", "inet", "airlock", chain) != before

    check = fw.tool("--check")
    assert check.returncode == 3 and check.stdout.splitlines()[-1] == "drift", check.stdout + check.stderr
    assert f"chain {chain}:" in check.stdout and '"accept":null' in check.stdout

    repair = fw.tool("--repair")
    assert repair.returncode == 0 and repair.stdout.splitlines()[-1] == "repaired", repair.stdout + repair.stderr
    assert fw.nft("list", "chain", "inet", "airlock", chain) == before
    assert fw.tool("--check").stdout.strip() == "clean"
    assert fw.elems("llm_hosts_v4") == [["127.0.0.1/32", 8000]], "the LLM addresses were lost"
    assert fw.elems("host_services_v4") == [[f"{PEER_IP}/32", NAMED_PORT]], "the host services' addresses were lost"
    kept = fw.elems("maintenance_v4", with_expiry=True)
    assert [k[:2] for k in kept] == window and all(0 < k[2] <= 120 for k in kept), kept
    events = fw.events_text()
    assert re.search(rf"AIRLOCK-EGRESS-DRIFT repaired by=ansible chains={chain}\b", events), events
    again = fw.tool("--repair")
    assert again.stdout.splitlines()[-1] == "clean"


@pytest.mark.parametrize("chain", BASE_CHAINS)
def test_accept_inserted_into_a_base_chain_is_reported_and_repaired(fw, chain):
    assert fw.tool("--open", "old-mirror", "--timeout", "120").returncode == 0
    assert fw.elems("maintenance_v4")
    _tamper_and_repair(fw, chain)


def test_accept_inserted_into_each_regular_chain_is_reported_and_repaired(fw):
    assert fw.tool("--open", "old-mirror", "--timeout", "120").returncode == 0
    regular = fw.chains(base=False)
    assert regular
    for chain in regular:
        _tamper_and_repair(fw, chain)


@pytest.mark.parametrize("chain", ["forward", "input", "output", "from_container"])
def test_the_timer_run_repairs_and_logs_the_alert_line(fw, chain):
    fw.nft("insert", "rule", "inet", "airlock", chain, "accept")
    timer = fw.tool()
    assert timer.returncode == 0, timer.stderr
    assert timer.stdout.splitlines()[-1] == "changed"
    assert fw.tool("--check").stdout.strip() == "clean"
    assert fw.elems("llm_hosts_v4") == [["127.0.0.1/32", 8000]]
    assert re.search(rf"AIRLOCK-EGRESS-DRIFT repaired by=timer chains={chain}\b", fw.events_text())


@pytest.mark.parametrize("tamper,expect", [
    (["add", "chain", "inet", "airlock", "output", "{ policy accept; }"], "chain output: policy differ"),
    (["add", "table", "inet", "airlock", "{ flags dormant; }"], "table flags"),
    (["flush", "chain", "inet", "airlock", "forward"], "chain forward: 0 rules live"),
    (["add", "chain", "inet", "airlock", "sneaky"], "chain sneaky: not in the ruleset file"),
    (["add", "rule", "inet", "airlock", "from_container", "ip", "daddr", "0.0.0.0/0", "accept"], "chain from_container:"),
    (["delete", "rule", "inet", "airlock", "egress_drop", "handle", "{egress_drop_last}"], "chain egress_drop: 1 rules live"),
], ids=["policy", "dormant", "flushed", "extra-chain", "appended-rule", "deleted-rule"])
def test_other_tampering_is_caught(fw, tamper, expect):
    if "{egress_drop_last}" in tamper:
        handles = re.findall(r"# handle (\d+)", fw.nft("-a", "list", "chain", "inet", "airlock", "egress_drop"))
        tamper = [handles[-1] if a == "{egress_drop_last}" else a for a in tamper]
    fw.nft(*tamper)
    check = fw.tool("--check")
    assert check.returncode == 3 and expect in check.stdout, check.stdout + check.stderr
    assert fw.tool("--repair").stdout.splitlines()[-1] == "repaired"
    assert fw.tool("--check").stdout.strip() == "clean"
    assert "AIRLOCK-EGRESS-DRIFT" in fw.events_text()


def test_deleted_table_is_reloaded(fw):
    fw.nft("delete", "table", "inet", "airlock")
    check = fw.tool("--check")
    assert check.returncode == 3 and "not loaded" in check.stdout
    assert fw.tool().returncode == 0
    assert fw.tool("--check").stdout.strip() == "clean"
    assert fw.elems("llm_hosts_v4") == [["127.0.0.1/32", 8000]]
    assert "AIRLOCK-EGRESS-DRIFT repaired by=timer" in fw.events_text()


def test_a_changed_ruleset_file_is_reloaded_without_a_tamper_alert(fw):
    """A deployment writes the file, then restarts the unit: a timer run in between reloads
    the new file and logs AIRLOCK-EGRESS-RELOAD, not a tamper alert."""
    assert fw.tool("--repair").stdout.strip() == "clean"  # the table is verified against this file
    fw.ruleset.write_text(fw.ruleset.read_text().replace('comment "ping from the proxy"', 'comment "ping from the proxy (new)"'))
    timer = fw.tool()
    assert timer.returncode == 0 and fw.tool("--check").stdout.strip() == "clean"
    assert "ping from the proxy (new)" in fw.nft("list", "chain", "inet", "airlock", "input")
    events = fw.events_text()
    assert "AIRLOCK-EGRESS-RELOAD reloaded by=timer" in events and "AIRLOCK-EGRESS-DRIFT" not in events, events
    fw.nft("insert", "rule", "inet", "airlock", "forward", "accept")  # now the same file is verified: tamper
    fw.tool()
    assert "AIRLOCK-EGRESS-DRIFT repaired by=timer chains=forward" in fw.events_text()


# ----------------------------------------------------------------------------- host services
SERVICE_PROBES = [(SERVICE_IP, SERVICE_PORT), (PEER_IP, NAMED_PORT)]  # by cidr, by name
UNLISTED_PROBES = [(SERVICE_IP, NAMED_PORT), (PEER_IP, SERVICE_PORT)]  # each address with the other's port
NOBODY = 65534


def test_host_services_open_to_root_only(fw):
    """The host services' rules name their users (meta skuid root): root reaches both (the
    one by cidr, the one by name through host_services_v4), nobody reaches neither, by the
    same probe; root reaches no pairing the list does not name."""
    for address, port in SERVICE_PROBES:
        assert connect(fw.ns, address, port) == "ok", f"positive control: root cannot reach {address}:{port}"
        assert connect(fw.ns, address, port, uid=NOBODY).startswith("failed"), f"nobody reached {address}:{port}"
    for address, port in UNLISTED_PROBES:
        assert connect(fw.ns, address, port).startswith("failed"), f"root reached {address}:{port}, not in the list"
    rules = fw.nft("list", "chain", "inet", "airlock", "host_out")
    assert 'comment "host service backups"' in rules and "@host_services_v4 meta skuid" in rules, rules
    fw.nft("delete", "table", "inet", "airlock")  # positive control: every listener answers everyone
    for address, port in SERVICE_PROBES + UNLISTED_PROBES:
        assert connect(fw.ns, address, port) == "ok" and connect(fw.ns, address, port, uid=NOBODY) == "ok", (address, port)


def test_repair_keeps_the_host_services_by_name(fw):
    fw.nft("insert", "rule", "inet", "airlock", "host_out", "accept")
    assert connect(fw.ns, PEER_IP, NAMED_PORT, uid=NOBODY) == "ok"  # the tampered rule lets anyone out
    assert fw.tool("--repair").stdout.splitlines()[-1] == "repaired"
    assert fw.elems("host_services_v4") == [[f"{PEER_IP}/32", NAMED_PORT]]
    assert connect(fw.ns, PEER_IP, NAMED_PORT) == "ok", "root lost the host service by name after the repair"
    assert connect(fw.ns, PEER_IP, NAMED_PORT, uid=NOBODY).startswith("failed")


# ----------------------------------------------------------------------------- the window
def test_window_closes_by_itself_and_the_timer_never_reopens_it(fw):
    assert not fw.connects(), "the firewall lets the mirror through before the window opens"
    opened = fw.tool("--open", "old-mirror", "--timeout", "3")
    assert opened.returncode == 0 and opened.stdout.splitlines()[-1] == "changed", opened.stdout + opened.stderr
    elems = fw.elems("maintenance_v4", with_expiry=True)
    assert [e[:2] for e in elems] == [[f"{PEER_IP}/32", MIRROR_PORT]] and 0 < elems[0][2] <= 3, elems
    assert fw.connects(), "positive control: the open window lets the mirror through"
    shown = json.loads(fw.tool("--show").stdout)
    assert shown["maintenance_open"] == ["old-mirror"] and shown["maintenance_deadline"]

    time.sleep(3.5)  # no command runs: the kernel alone closes it
    assert fw.elems("maintenance_v4") == []
    assert not fw.connects(), "the mirror is still reachable after the deadline"

    timer = fw.tool()
    assert timer.returncode == 0 and "maintenance window: closed" in timer.stdout, timer.stdout + timer.stderr
    assert fw.elems("maintenance_v4") == [] and not fw.connects()
    assert not (fw.state / "maintenance-open.json").exists()
    assert "deadline" in fw.events_text() and "passed" in fw.events_text()
    assert fw.tool().returncode == 0 and fw.elems("maintenance_v4") == []


def test_timer_does_not_reopen_from_an_older_state_file_without_deadline(fw):
    fw.state.mkdir(exist_ok=True)
    (fw.state / "maintenance-open.json").write_text(json.dumps(["old-mirror"]))  # what the older tool left
    assert fw.tool().returncode == 0
    assert fw.elems("maintenance_v4") == [] and not fw.connects()


def test_repair_keeps_an_open_window_only_before_its_deadline(fw):
    assert fw.tool("--open", "old-mirror", "--timeout", "3").returncode == 0
    fw.nft("insert", "rule", "inet", "airlock", "output", "accept")
    assert fw.tool("--repair").stdout.splitlines()[-1] == "repaired"
    assert [e[:2] for e in fw.elems("maintenance_v4", with_expiry=True)] == [[f"{PEER_IP}/32", MIRROR_PORT]]
    time.sleep(3.5)
    fw.nft("insert", "rule", "inet", "airlock", "output", "accept")
    assert fw.tool("--repair").stdout.splitlines()[-1] == "repaired"
    assert fw.elems("maintenance_v4") == [], "the repair re-opened a window past its deadline"
    assert not fw.connects()


def test_reopening_starts_the_time_anew_and_close_empties(fw):
    assert fw.tool("--open", "old-mirror", "--timeout", "60").returncode == 0
    again = fw.tool("--open", "old-mirror", "--timeout", "600")
    assert again.stdout.splitlines()[-1] == "unchanged"  # same addresses: not a change
    assert fw.elems("maintenance_v4", with_expiry=True)[0][2] > 60
    closed = fw.tool("--close")
    assert closed.stdout.splitlines()[-1] == "changed" and fw.elems("maintenance_v4") == []


def test_window_on_sets_without_timeout_flag_is_closed_by_the_timer(fw_without_timeouts):
    """Until the template declares `flags interval, timeout`, the deadline is kept by the timer."""
    fw = fw_without_timeouts
    assert fw.tool("--open", "old-mirror", "--timeout", "2").returncode == 0
    assert fw.connects()
    time.sleep(2.5)
    assert fw.tool().returncode == 0
    assert fw.elems("maintenance_v4") == [] and not fw.connects()


# ----------------------------------------------------------------------------- new names
def test_a_destination_not_yet_in_the_configuration_opens_with_its_definition(fw):
    new = [{"name": "new-mirror", "cidrs": [f"{PEER_IP}/32"], "ports": [MIRROR_PORT]}]
    refused = fw.tool("--open", "new-mirror", "--timeout", "60")
    assert refused.returncode != 0 and "unknown maintenance destination(s): new-mirror" in refused.stderr
    opened = fw.tool("--open", "new-mirror", "--timeout", "60", "--destinations", json.dumps(new))
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert "maintenance window: new-mirror until" in opened.stdout and fw.connects()
    # The configuration still names only old-mirror: the timer keeps the window from its state.
    timer = fw.tool()
    assert timer.returncode == 0 and "new-mirror" in timer.stdout, timer.stdout + timer.stderr
    assert fw.elems("maintenance_v4") == [[f"{PEER_IP}/32", MIRROR_PORT]]
    assert json.loads(fw.tool("--show").stdout)["maintenance_open"] == ["new-mirror"]


# ----------------------------------------------------------------------------- monitoring
ALERTD = ROOT / "roles" / "monitoring" / "files" / "alertd.py"


def _wait(func, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = func()
        if result:
            return result
        time.sleep(0.3)
    return func()


def test_alertd_raises_the_drift_and_window_alerts(fw):
    """The monitoring role's alertd, run in the firewall's namespace: the tool's own repair
    line becomes an egress_drift alert; an open window is a maintenance_window alert."""
    alerts = fw.tmp / "alerts.jsonl"
    config = fw.tmp / "alertd.json"
    config.write_text(json.dumps({
        "host": "srv", "poll_interval": 0.2,
        "watchers": [{"type": "egress_drift", "source": {"file": str(fw.events)}},
                     {"type": "maintenance_window", "interval": 1, "state_file": str(fw.state / "maintenance-open.json")}],
        "sinks": [{"type": "log", "path": str(alerts)}]}))
    daemon = subprocess.Popen(["ip", "netns", "exec", fw.ns, sys.executable, str(ALERTD), "--config", str(config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        read = lambda: [json.loads(line) for line in alerts.read_text().splitlines()] if alerts.exists() else []  # noqa: E731
        time.sleep(2)
        assert read() == [], "an alert before anything happened"
        fw.nft("insert", "rule", "inet", "airlock", "forward", "accept")
        assert fw.tool().returncode == 0
        drift = _wait(lambda: [a for a in read() if a["type"] == "egress_drift"])
        assert drift and drift[0]["key"] == "egress_drift:forward" and drift[0]["severity"] == "critical", read()
        assert fw.tool("--open", "old-mirror", "--timeout", "300").returncode == 0
        window = _wait(lambda: [a for a in read() if a["type"] == "maintenance_window"])
        assert window and window[0]["details"]["names"] == ["old-mirror"] and window[0]["details"]["until"], read()
        assert 290 <= window[0]["details"]["until"] - time.time() <= 301
    finally:
        daemon.terminate()
        daemon.wait(10)


def test_health_report_shows_the_window(fw):
    """roles/monitoring tasks_from health.yml, run by Ansible inside the namespace."""
    playbook = fw.tmp / "health.yml"
    out = fw.tmp / "rows.json"
    playbook.write_text(
        "- hosts: localhost\n"
        "  connection: local\n"
        "  gather_facts: true\n"
        "  tasks:\n"
        "    - ansible.builtin.include_role: {name: monitoring, tasks_from: health.yml}\n"
        f"    - ansible.builtin.copy: {{content: '{{{{ monitoring_health_rows | to_json }}}}', dest: {out}, mode: '0600'}}\n")
    extra = {"monitoring_health_services": [], "monitoring_health_disk_paths": ["/"], "monitoring_health_cert_paths": [],
             "__monitoring_window_state_file": str(fw.state / "maintenance-open.json"),
             "ansible_python_interpreter": sys.executable}
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
               ANSIBLE_CACHE_PLUGIN="memory")

    def rows():
        res = run("ip", "netns", "exec", fw.ns, str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,",
                  str(playbook), "-e", json.dumps(extra), check=False, env=env, cwd=str(ROOT))
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
        rows = json.loads(out.read_text())
        assert isinstance(rows, list) and [r["check"] for r in rows][0] == "disk /", rows  # one list of rows
        return [r for r in rows if r["check"] == "egress maintenance window"]

    assert rows() == [{"check": "egress maintenance window", "status": "OK", "detail": "closed"}]
    assert fw.tool("--open", "old-mirror", "--timeout", "600").returncode == 0
    deadline = json.loads(fw.tool("--show").stdout)["maintenance_deadline"]
    (row,) = rows()
    assert row["status"] == "WARN" and row["detail"].startswith("open (old-mirror, 1 entries) until "), row
    shown = deadline.replace("T", " ").replace("+00:00", " UTC")
    until = time.mktime(time.strptime(row["detail"].split("until ")[1], "%Y-%m-%d %H:%M:%S UTC"))
    assert abs(until - time.mktime(time.strptime(shown, "%Y-%m-%d %H:%M:%S UTC"))) <= 15, (row, deadline)


# ----------------------------------------------------------------------------- the role's tasks
def test_role_maintenance_open_opens_a_destination_the_configuration_does_not_know(fw):
    """roles/egress_firewall tasks_from maintenance_open, run by Ansible with the sets tool
    pointed at this namespace: a destination renamed in the inventory (not yet in the
    server's egress.json) opens on the first run, for egress_firewall_maintenance_timeout."""
    stub = fw.tmp / "airlock-egress-sets"
    stub.write_text(f"#!/bin/sh\nAIRLOCK_EGRESS_EVENT_LOG={fw.events} exec ip netns exec {fw.ns} {sys.executable} {TOOL} "
                    f"--config {fw.config} --state-dir {fw.state} \"$@\"\n")
    stub.chmod(0o755)
    playbook = fw.tmp / "open.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  connection: local\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ansible.builtin.include_role: {name: egress_firewall, tasks_from: maintenance_open}\n")
    extra = {
        "ansible_python_interpreter": sys.executable,
        "__egress_firewall_sets_script": str(stub),
        "egress_firewall_llm_endpoints": [{"name": "fixed", "cidrs": ["192.0.2.20/32"], "port": 8000}],
        "egress_firewall_dns_servers": ["192.0.2.53"],
        "egress_firewall_proxy_addresses": ["192.0.2.40"],
        "egress_firewall_maintenance_destinations": [{"name": "new-mirror", "cidrs": [f"{PEER_IP}/32"], "ports": [MIRROR_PORT]}],
        "egress_firewall_maintenance_open": ["new-mirror"],
        "egress_firewall_maintenance_timeout": 120,
    }
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
               ANSIBLE_CACHE_PLUGIN="memory")
    assert "new-mirror" not in fw.config.read_text()
    res = run(str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(playbook), "-e", json.dumps(extra),
              check=False, env=env, cwd=str(ROOT))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert re.search(r"changed: \[localhost\]", res.stdout), res.stdout[-2000:]
    assert fw.connects()
    elems = fw.elems("maintenance_v4", with_expiry=True)
    assert [e[:2] for e in elems] == [[f"{PEER_IP}/32", MIRROR_PORT]] and 100 < elems[0][2] <= 120, elems

    extra["egress_firewall_maintenance_timeout"] = 30  # below the minimum: refused before any change
    fw.tool("--close")
    res = run(str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(playbook), "-e", json.dumps(extra),
              check=False, env=env, cwd=str(ROOT))
    assert res.returncode != 0 and "egress_firewall_maintenance_timeout must be whole seconds from 60" in res.stdout
    assert fw.elems("maintenance_v4") == [] and not fw.connects()
