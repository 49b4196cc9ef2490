"""Dropped egress, observed end to end in a real kernel, inside network namespaces this test
creates (nothing touches the machine's own ruleset or logs): a real connection is dropped by
the egress firewall, the drop logger writes its line, and alertd raises the egress alert
naming the destination. No synthetic line is written anywhere.

    sbx  --(docker0)--  fw (the role's ruleset, ulogd2, alertd)  --(dcy0)--  decoy 192.0.2.30:9000

`fw` holds the role's template rendered with the role's defaults and filter plugins, and the
role's ulogd2 configuration (ulogd.conf.j2) with the drop log in a scratch directory; ulogd2
and alertd run inside `fw`, as they run on the server. The drop rules log to an NFLOG group
(`log group`), which netlink delivers in this namespace, where the kernel log (`log` without
a group) writes nothing: a namespace that is not the machine's initial one is what a lab or
Molecule host is.

What is proven:
- the network is sound: before the ruleset loads, `fw` itself and the sandbox namespace both
  reach the decoy (a listener this test started), and nothing is logged;
- with the ruleset loaded, the host's connection to the decoy (output chain) and the
  sandbox's (forward chain) are refused, each drop is a line of the drop log with the prefix,
  source and destination, and alertd (the egress watcher reading that file, as the
  monitoring role configures it by default) raises a critical `egress_drop` alert naming the
  decoy, within 10 seconds (the latency is printed).

Needs root, `ip`, `nft` and ulogd2's `ulogd` (tools/testbed/install-packages.sh installs it).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_egress_firewall_netns import connect, render_ruleset, run

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "egress_firewall"
ALERTD = ROOT / "roles" / "monitoring" / "files" / "alertd.py"
ULOGD = shutil.which("ulogd") or "/usr/sbin/ulogd"
DECOY, DECOY_PORT = "192.0.2.30", 9000
FW_SBX, SBX, FW_DECOY = "10.79.2.1", "10.79.2.2", "192.0.2.1"
LATENCY_BOUND = 10.0  # seconds, drop -> alert (the benchmark's goal)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft")) or not os.access(ULOGD, os.X_OK),
    reason="needs root, ip, nft and ulogd (the ulogd2 package)")


DECOY_SERVER = """
import socket
s = socket.create_server(("0.0.0.0", %d))
while True:
    c, _ = s.accept()
    c.sendall(b"decoy")
    c.close()
""" % DECOY_PORT

def probe(ns: str) -> str:
    """What `ns` gets connecting to the decoy: 'decoy' when it answered, else 'failed ...'."""
    return connect(ns, DECOY, DECOY_PORT)


def render_ulogd_conf(drop_log: Path, daemon_log: Path) -> str:
    """The role's ulogd.conf.j2, with the role's defaults and the drop log in `drop_log`."""
    import jinja2  # noqa: PLC0415 (the venv's, as Ansible's)
    import yaml  # noqa: PLC0415

    values = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values.update({"ansible_managed": "rendered by tests/host/test_egress_drop_alert_netns.py",
                   "__egress_firewall_drop_log": str(drop_log)})
    env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    text = env.from_string((ROLE / "templates" / "ulogd.conf.j2").read_text()).render(**values)
    assert 'logfile="syslog"' in text
    return text.replace('logfile="syslog"', f'logfile="{daemon_log}"')  # its own messages, for the failure output


@pytest.fixture(scope="module")
def net():
    tag = os.getpid()
    ns = {name: f"airlock-{name}-{tag}" for name in ("fw", "sbx", "decoy")}
    for name in ns.values():
        run("ip", "netns", "add", name)
    server = None
    try:
        for peer, fw_dev, fw_ip, peer_ip in (("sbx", "docker0", FW_SBX, SBX), ("decoy", "dcy0", FW_DECOY, DECOY)):
            run("ip", "-n", ns["fw"], "link", "add", fw_dev, "type", "veth", "peer", "name", "eth0", "netns", ns[peer])
            run("ip", "-n", ns["fw"], "addr", "add", f"{fw_ip}/24", "dev", fw_dev)
            run("ip", "-n", ns[peer], "addr", "add", f"{peer_ip}/24", "dev", "eth0")
            for where, dev in ((ns["fw"], fw_dev), (ns[peer], "eth0"), (ns[peer], "lo")):
                run("ip", "-n", where, "link", "set", dev, "up")
            run("ip", "-n", ns[peer], "route", "add", "default", "via", fw_ip)
        run("ip", "-n", ns["fw"], "link", "set", "lo", "up")
        run("ip", "netns", "exec", ns["fw"], "sysctl", "-qw", "net.ipv4.ip_forward=1")
        server = subprocess.Popen(["ip", "netns", "exec", ns["decoy"], sys.executable, "-c", DECOY_SERVER],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and probe(ns["fw"]) != "decoy":
            time.sleep(0.3)
        yield ns
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for name in ns.values():
            run("ip", "netns", "del", name, check=False)


class Pipeline:
    """ulogd2 and alertd running in `fw`, as the roles configure them on the server."""

    def __init__(self, fw: str, tmp: Path):
        self.tmp = tmp
        self.drop_log, self.daemon_log, self.alerts = tmp / "drops.log", tmp / "ulogd.log", tmp / "alerts.jsonl"
        conf = tmp / "ulogd.conf"
        conf.write_text(render_ulogd_conf(self.drop_log, self.daemon_log))
        self.ulogd = subprocess.Popen(["ip", "netns", "exec", fw, ULOGD, "-c", str(conf)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        import yaml  # noqa: PLC0415

        monitoring = yaml.safe_load((ROOT / "roles" / "monitoring" / "defaults" / "main.yml").read_text())
        assert "file" in monitoring["monitoring_egress_source"], "monitoring does not read the drop log by default"
        config = tmp / "alertd.json"
        config.write_text(json.dumps({
            "host": "srv", "poll_interval": monitoring["monitoring_poll_interval"], "dedup_window": 0,
            "watchers": [{"type": "egress_drop", "prefix": monitoring["monitoring_egress_prefix"],
                          "source": {"file": str(self.drop_log)}}],
            "sinks": [{"type": "log", "path": str(self.alerts)}]}))
        self.alertd = subprocess.Popen(["ip", "netns", "exec", fw, sys.executable, str(ALERTD), "--config", str(config)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not self.drop_log.exists():
            time.sleep(0.1)
        assert self.drop_log.exists(), f"ulogd did not start: {self.diagnosis()}"
        time.sleep(1)  # alertd follows the file from here on

    def lines(self) -> list[str]:
        return self.drop_log.read_text().splitlines() if self.drop_log.exists() else []

    def read_alerts(self) -> list[dict]:
        return [json.loads(line) for line in self.alerts.read_text().splitlines()] if self.alerts.exists() else []

    def diagnosis(self) -> str:
        daemon = self.daemon_log.read_text()[-2000:] if self.daemon_log.exists() else ""
        return f"ulogd alive={self.ulogd.poll() is None}; its log: {daemon}; drop log: {self.lines()}"

    def stop(self):
        for proc in (self.alertd, self.ulogd):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def pipeline(net, tmp_path_factory):
    """The drop logger and alertd started before the ruleset, then the ruleset loaded in `fw`;
    what the network did before it is kept for the control test."""
    tmp = tmp_path_factory.mktemp("drop-alert")
    pipe = Pipeline(net["fw"], tmp)
    try:
        before = {"fw": probe(net["fw"]), "sbx": probe(net["sbx"])}
        time.sleep(1)
        logged_before = pipe.lines()
        ruleset = tmp / "egress.nft"
        ruleset.write_text(render_ruleset())
        run("ip", "netns", "exec", net["fw"], "nft", "-f", str(ruleset))
        yield net, pipe, before, logged_before
    finally:
        pipe.stop()
        run("ip", "netns", "exec", net["fw"], "nft", "delete", "table", "inet", "airlock", check=False)


def test_the_decoy_answers_without_the_ruleset_and_nothing_is_logged(pipeline):
    _, pipe, before, logged_before = pipeline
    assert before == {"fw": "decoy", "sbx": "decoy"}, f"positive control: the decoy must answer both: {before}"
    assert logged_before == [], "a drop was logged with no firewall loaded"
    assert pipe.read_alerts() == []


def test_the_ruleset_logs_drops_to_the_nflog_group_the_logger_reads(pipeline):
    net, _, _, _ = pipeline
    import yaml  # noqa: PLC0415

    group = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["egress_firewall_log_group"]
    table = json.loads(run("ip", "netns", "exec", net["fw"], "nft", "-j", "list", "table", "inet", "airlock").stdout)
    logs = {r["rule"]["chain"]: e["log"] for r in table["nftables"] if "rule" in r for e in r["rule"]["expr"] if "log" in e}
    assert logs == {"egress_drop": {"prefix": "AIRLOCK-EGRESS-DROP ", "group": group},
                    "ingress_drop": {"prefix": "AIRLOCK-INGRESS-DROP ", "group": group}}, logs


@pytest.mark.parametrize("who,source", [("fw", FW_DECOY), ("sbx", SBX)], ids=["host", "sandbox"])
def test_a_real_drop_is_logged_and_alerted_naming_the_decoy(pipeline, capsys, who, source):
    net, pipe, _, _ = pipeline
    start = time.time()
    got = probe(net[who])
    assert got.startswith("failed"), f"the firewall let {who} reach the decoy ({got})"
    key = f"egress_drop:{source}:{DECOY}:TCP:{DECOY_PORT}"
    alert = None
    while time.time() < start + LATENCY_BOUND + 5 and alert is None:
        alert = next((a for a in pipe.read_alerts() if a["key"] == key), None)
        time.sleep(0.05)
    seen = time.time() - start
    line = next((x for x in pipe.lines() if f"SRC={source} DST={DECOY}" in x and f"DPT={DECOY_PORT}" in x), None)
    assert line and "AIRLOCK-EGRESS-DROP" in line and "PROTO=TCP" in line, f"no drop line: {pipe.diagnosis()}"
    assert alert is not None, f"no egress alert {key} within {LATENCY_BOUND + 5:.0f} s: {pipe.read_alerts()}; {pipe.diagnosis()}"
    assert alert["type"] == "egress_drop" and alert["severity"] == "critical"
    assert DECOY in alert["summary"] and alert["details"]["dst"] == DECOY, alert
    latency = alert["ts"] - start
    with capsys.disabled():
        print(f"\n  drop -> alert latency ({who}): {latency:.3f} s (alert written), {seen:.3f} s (seen by the test)")
    assert latency <= LATENCY_BOUND, f"drop -> alert took {latency:.1f} s"
