"""Dropped egress, end to end on the server host: a real connection to the decoy (from the
host, and from a sandbox the stand-in app started through the Docker socket) is dropped by
the egress firewall, the drop logger (ulogd2, egress_firewall role) writes its line from
the drop rules' NFLOG group, and alertd raises the egress alert naming the decoy. No
synthetic line is written anywhere.

The decoy is a listener this test starts on the decoy host, on ports nothing else uses;
the proxy client, which no firewall stands between, reaches it first (positive control).
alertd is the monitoring role's, started inside the server container with the egress
watcher reading the role's default source (monitoring_egress_source) to a log sink (this
scenario does not deploy the monitoring role). The drop rules are rate-limited (10/minute,
burst 10) and shared with the other tests' probes, so each attempt uses a port of its own
and is repeated on the next port until one is logged; the latency is that attempt's.
"""
from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest
import testinfra
import yaml

from tier import DECOY_IP, SERVER_IP, http, start_alertd, start_sandbox, wait_for

ROOT = Path(__file__).resolve().parents[3]
SERVER = "server_tier-server"
ALERTD_PATH = "/usr/local/lib/airlock-drop-alertd.py"
ALERTD_CONFIG = "/etc/airlock-drop-alertd.json"
ALERTS = "/var/log/airlock-drop-alert/alerts.jsonl"
ALERTD_UNIT = "airlock-drop-alertd"
DECOY_UNIT = "airlock-drop-decoy"
PORTS = list(range(9310, 9330))  # the test's own listener on the decoy: ports nothing else uses
LATENCY_BOUND = 10.0  # seconds, drop -> alert (issue: the benchmark's goal)

server = testinfra.get_host(f"docker://{SERVER}")
decoy = testinfra.get_host("docker://server_tier-decoy")
proxy = testinfra.get_host("docker://server_tier-proxy")

MONITORING = yaml.safe_load((ROOT / "roles" / "monitoring" / "defaults" / "main.yml").read_text())
FIREWALL = yaml.safe_load((ROOT / "roles" / "egress_firewall" / "vars" / "main.yml").read_text())
DROP_LOG = FIREWALL["__egress_firewall_drop_log"]

LISTENER = """
import selectors, socket, sys
sel = selectors.DefaultSelector()
for port in sys.argv[1:]:
    sel.register(socket.create_server(("0.0.0.0", int(port))), selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        c, _ = key.fileobj.accept()
        c.sendall(b"drop-test-decoy")
        c.close()
"""

CONNECT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as c:
        print(c.recv(32).decode() or "empty")
except OSError as exc:
    print("failed", type(exc).__name__)
"""


def connect(host, port: int, container: str | None = None) -> str:
    prefix = f"docker exec {container} " if container else ""
    return host.run(f"{prefix}python3 -c {shlex.quote(CONNECT)} {DECOY_IP} {port}").stdout.strip()


def alerts() -> list:
    text = server.run(f"cat {ALERTS}").stdout if server.file(ALERTS).exists else ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def decoy_listener():
    """A listener of this test's own on the decoy, answered from the proxy client first."""
    decoy.run(f"systemctl stop {DECOY_UNIT}; systemctl reset-failed {DECOY_UNIT}")
    decoy.check_output(f"systemd-run --unit {DECOY_UNIT} /usr/bin/python3 -c {shlex.quote(LISTENER)} "
                       + " ".join(map(str, PORTS)))
    assert wait_for(lambda: connect(proxy, PORTS[0]) == "drop-test-decoy", 20), "the test's decoy never answered"
    yield
    decoy.run(f"systemctl stop {DECOY_UNIT}")


@pytest.fixture(scope="module")
def alertd():
    """The monitoring role's alertd in the server container, its egress watcher on the
    role's default source, to a log sink; no de-duplication (each attempt is its own key)."""
    server.check_output(f"mkdir -p {Path(ALERTS).parent}")
    config = {"host": SERVER, "dedup_window": 0, "poll_interval": MONITORING["monitoring_poll_interval"],
              "watchers": [{"type": "egress_drop", "prefix": MONITORING["monitoring_egress_prefix"],
                            "source": MONITORING["monitoring_egress_source"]}],
              "sinks": [{"type": "log", "path": ALERTS}]}
    start_alertd(server, SERVER, config, ALERTD_PATH, ALERTD_CONFIG, ALERTD_UNIT, settle=2)  # follows the file from then on
    yield
    server.run(f"systemctl stop {ALERTD_UNIT}")


def test_the_drop_logger_runs_and_monitoring_reads_its_file():
    assert server.service("ulogd2").is_running and server.service("ulogd2").is_enabled
    assert MONITORING["monitoring_egress_source"] == {"file": DROP_LOG}
    assert server.file(DROP_LOG).exists
    conf = server.file("/etc/ulogd.conf").content_string
    table = json.loads(server.check_output("nft -j list chain inet airlock egress_drop"))["nftables"]
    logs = [e["log"] for i in table if "rule" in i for e in i["rule"]["expr"] if "log" in e]
    assert logs and "group" in logs[0] and f"group={logs[0]['group']}" in conf, (logs, conf)


def drop_and_alert(source: str, attempt, capsys, who: str) -> None:
    """Connect to the decoy with `attempt(port)` on fresh ports until a drop is logged; the
    drop log has its line and an alert names the decoy, within the bound."""
    for port in PORTS:
        assert connect(proxy, port) == "drop-test-decoy", f"positive control: the decoy does not answer on {port}"
        start = time.time()
        got = attempt(port)
        assert got.startswith("failed"), f"{who} reached the decoy on {port} ({got})"
        key = f"egress_drop:{source}:{DECOY_IP}:TCP:{port}"
        found = wait_for(lambda key=key: [a for a in alerts() if a["key"] == key], LATENCY_BOUND + 2, 0.1)
        if found:
            break
        # Not logged: the rate limit's bucket was empty (other tests' drops). The next port.
        time.sleep(6)
    else:
        pytest.fail(f"no drop of {who} was alerted on any port; drop log: {server.run(f'tail -5 {DROP_LOG}').stdout}")
    lines = server.check_output(f"grep -F 'DST={DECOY_IP} ' {DROP_LOG} | grep -F 'DPT={port} '")
    assert f"SRC={source} " in lines and MONITORING["monitoring_egress_prefix"] in lines and "PROTO=TCP" in lines, lines
    alert = found[0]
    assert alert["type"] == "egress_drop" and alert["severity"] == "critical", alert
    assert DECOY_IP in alert["summary"] and alert["details"]["dst"] == DECOY_IP, alert
    latency = alert["ts"] - start
    with capsys.disabled():
        print(f"\n  drop -> alert latency ({who}, port {port}): {latency:.3f} s")
    assert 0 <= latency <= LATENCY_BOUND, f"drop -> alert took {latency:.1f} s"


def test_a_drop_from_the_host_raises_the_egress_alert(decoy_listener, alertd, capsys):
    drop_and_alert(SERVER_IP, lambda port: connect(server, port), capsys, "the host")


def test_a_drop_from_a_sandbox_raises_the_egress_alert(decoy_listener, alertd, capsys):
    info = start_sandbox(proxy)
    try:
        ip = server.check_output(
            "docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' " + info["name"]).strip()
        drop_and_alert(ip, lambda port: connect(server, port, container=info["name"]), capsys, "a sandbox")
    finally:
        http(proxy, f"http://{SERVER_IP}:3000/api/stand-in/sandboxes/{info['id']}", "DELETE")
