"""Tamper with the server's egress firewall and watch it come back, with an alert.

Each test inserts an `accept` at the top of one of the server's base chains (forward,
input, output) of `inet airlock` and lets the drift check repair it: the refresh timer's
unit (`systemctl start airlock-egress-refresh.service`) or the role itself (a run of
egress_firewall through Ansible, as `site.yml --tags egress_firewall` does). Then the rule
is gone, the table equals the ruleset file again, the name-based set still holds its
address, and an alert was written by the monitoring role's alertd (started here inside
the server container with a log sink, watching the journal as the role configures it;
this scenario does not deploy the monitoring role).

The maintenance window closes by itself at its deadline (nft element timeouts), the timer
does not open it again, an alert is written while it is open, and a destination the
server's configuration does not know yet (renamed or added in the inventory) opens through
the role's maintenance_open.

An LLM key swapped in the app's settings store (the API masks it) is put back by the next
run of the openhands role, which compares the store itself. A request the LLM gateway
refuses (a sandbox trying a key of its own) raises an alert from the request log.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import testinfra

ROOT = Path(__file__).resolve().parents[3]
SERVER = "server_tier-server"
LLM_HOSTS_V4 = [["10.213.5.20/32", 8000]]  # llm.airlock.test, resolved by the fake DNS
ALERTD_PATH = "/usr/local/lib/airlock-tamper-alertd.py"
ALERTD_CONFIG = "/etc/airlock-tamper-alertd.json"
ALERTS = "/var/log/airlock-tamper/alerts.jsonl"
ALERTD_UNIT = "airlock-tamper-alertd"
REQUEST_LOG = "/var/log/airlock-llm-gateway/requests.jsonl"

from tier import DECOY_IP, GATEWAY_KEY, SERVER_IP, http, probe, start_alertd, start_sandbox, wait_for  # noqa: E402

server = testinfra.get_host(f"docker://{SERVER}")


def sets_tool(*args: str):
    return server.run("airlock-egress-sets " + " ".join(shlex.quote(a) for a in args))


def first_rule(chain: str) -> list:
    data = json.loads(server.check_output(f"nft -j list chain inet airlock {chain}"))["nftables"]
    rules = [i["rule"]["expr"] for i in data if "rule" in i]
    return rules[0] if rules else []


def alerts(kind: str, since: float) -> list:
    text = server.run(f"cat {ALERTS}").stdout if server.file(ALERTS).exists else ""
    found = []
    for line in text.splitlines():
        try:
            alert = json.loads(line)
        except ValueError:
            continue
        if alert.get("type") == kind and alert.get("ts", 0) >= since:
            found.append(alert)
    return found


def ansible_playbook(text: str, extra: dict | None = None) -> str:
    """Run a playbook against this scenario's inventory (the verifier's environment carries
    Molecule's ANSIBLE_CONFIG, roles path and inventory); returns its output."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory:
        pytest.skip("MOLECULE_INVENTORY_FILE is not set: run through `molecule verify`")
    binary = Path(sys.executable).parent / "ansible-playbook"
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        fh.write(text)
        playbook = fh.name
    try:
        argv = [str(binary) if binary.exists() else "ansible-playbook", "-i", str(Path(inventory).parent), playbook]
        if extra:
            argv += ["-e", json.dumps(extra)]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)
    finally:
        os.unlink(playbook)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def task_status(output: str, task: str) -> str:
    """'changed', 'ok' or 'skipping' of a task of the default callback's output."""
    match = re.search(r"TASK \[[^\]]*" + re.escape(task) + r"\][^\n]*\n(.*?)(?=\nTASK \[|\nRUNNING HANDLER|\nPLAY RECAP)", output, re.S)
    assert match, f"task {task!r} not in the output"
    found = re.search(rf"^(changed|ok|skipping): \[{SERVER}\]", match.group(1), re.M)
    assert found, match.group(1)
    return found.group(1)


ROLE_PLAY = """
- hosts: openhands
  gather_facts: false
  roles:
    - role: egress_firewall
"""
DRIFT_TASK = "Compare the live table with the ruleset and reload it on any difference"


@pytest.fixture(scope="module", autouse=True)
def alertd():
    """The monitoring role's alertd in the server container: the egress_drift watcher on the
    journal (as the role configures it), the maintenance_window check and the LLM gateway's
    request log, to a log sink."""
    assert wait_for(lambda: server.run("nft list table inet airlock").rc == 0, 120), "the firewall's table is not loaded"
    config = {"host": SERVER, "dedup_window": 0, "poll_interval": 0.2,
              "watchers": [{"type": "egress_drift", "source": {"journal": {"SYSLOG_IDENTIFIER": "airlock-egress-sets"}}},
                           {"type": "maintenance_window", "interval": 1},
                           {"type": "llm_gateway_refused", "source": {"file": REQUEST_LOG}}],
              "sinks": [{"type": "log", "path": ALERTS}]}
    # journalctl -f has started and reads from then on.
    start_alertd(server, SERVER, config, ALERTD_PATH, ALERTD_CONFIG, ALERTD_UNIT, settle=3)
    yield
    server.run(f"systemctl stop {ALERTD_UNIT}")


@pytest.fixture()
def clean_table():
    check = sets_tool("--check")
    assert check.rc == 0 and check.stdout.strip().endswith("clean"), f"the table differs before the test: {check.stdout}"
    yield
    sets_tool("--repair")  # whatever a failed test left behind


# ----------------------------------------------------------------------------- drift
@pytest.mark.parametrize("chain", ["forward", "input", "output"])
def test_timer_repairs_an_accept_at_the_top_of_a_chain_with_an_alert(clean_table, chain):
    start = time.time()
    server.check_output(f"nft insert rule inet airlock {chain} accept")
    assert first_rule(chain) == [{"accept": None}]
    if chain == "output":  # the tamper is real: the host now reaches the decoy
        assert probe(server, {"kind": "tcp", "host": DECOY_IP, "port": 8000})["ok"], "the inserted accept had no effect"
    check = sets_tool("--check")
    assert check.rc == 3 and f"chain {chain}:" in check.stdout, check.stdout + check.stderr

    server.check_output("systemctl start airlock-egress-refresh.service")

    assert first_rule(chain) != [{"accept": None}], "the accept rule is still there"
    assert sets_tool("--check").stdout.strip().endswith("clean")
    assert json.loads(sets_tool("--show").stdout)["llm_hosts_v4"] == LLM_HOSTS_V4, "the LLM set lost its address"
    if chain == "output":
        assert not probe(server, {"kind": "tcp", "host": DECOY_IP, "port": 8000})["ok"], "the decoy is still reachable"
    journal = server.check_output(f"journalctl -t airlock-egress-sets --since @{int(start)} --no-pager -o cat")
    assert f"AIRLOCK-EGRESS-DRIFT repaired by=timer chains={chain}" in journal, journal
    drift = wait_for(lambda: [a for a in alerts("egress_drift", start) if a["key"] == f"egress_drift:{chain}"], 30)
    assert drift and drift[0]["severity"] == "critical" and drift[0]["details"]["by"] == "timer", drift


def test_role_run_repairs_a_tampered_forward_chain_and_reports_changed(clean_table):
    """The issue's case: `--tags egress_firewall` used to report changed=0 and leave it."""
    clean = ansible_playbook(ROLE_PLAY)
    assert task_status(clean, DRIFT_TASK) == "ok", "positive control: an untouched table is reported as changed"
    start = time.time()
    # The refresh timer repairs drift too: hold it while the role's run is what is tested,
    # or a timer run in between repairs first and the role rightly finds nothing to do.
    server.check_output("systemctl stop airlock-egress-refresh.timer")
    try:
        server.check_output("nft insert rule inet airlock forward accept")
        tampered = ansible_playbook(ROLE_PLAY)
    finally:
        server.check_output("systemctl start airlock-egress-refresh.timer")
    assert task_status(tampered, DRIFT_TASK) == "changed"
    assert first_rule("forward") != [{"accept": None}]
    assert sets_tool("--check").stdout.strip().endswith("clean")
    assert json.loads(sets_tool("--show").stdout)["llm_hosts_v4"] == LLM_HOSTS_V4
    drift = wait_for(lambda: [a for a in alerts("egress_drift", start) if a["key"] == "egress_drift:forward"], 30)
    assert drift and drift[0]["details"]["by"] == "ansible", drift


# ----------------------------------------------------------------------------- the window
def test_window_closes_by_itself_and_the_timer_does_not_reopen_it():
    mirror = {"kind": "tcp", "host": DECOY_IP, "port": 9000}
    assert not probe(server, mirror)["ok"], "the mirror is reachable with the window closed"
    start = time.time()
    opened = sets_tool("--open", "test-mirror", "--timeout", "10")
    assert opened.rc == 0, opened.stdout + opened.stderr
    try:
        shown = json.loads(sets_tool("--show").stdout)
        assert shown["maintenance_open"] == ["test-mirror"] and shown["maintenance_deadline"]
        elems = json.loads(server.check_output("nft -j list set inet airlock maintenance_v4"))["nftables"][1]["set"]
        assert "timeout" in elems["flags"], "the maintenance sets are not declared with flags timeout"
        assert all(0 < e["elem"]["expires"] <= 10 for e in elems["elem"]), elems
        assert probe(server, mirror)["ok"], "positive control: the open window does not let the mirror through"
        window = wait_for(lambda: alerts("maintenance_window", start), 8)
        assert window and window[0]["details"]["names"] == ["test-mirror"] and window[0]["details"]["until"], window

        time.sleep(max(0.0, start + 11.5 - time.time()))  # nothing runs: the kernel drops the elements at the deadline
        assert json.loads(sets_tool("--show").stdout)["maintenance_v4"] == []
        assert not probe(server, mirror)["ok"], "the mirror is reachable after the deadline"
        server.check_output("systemctl start airlock-egress-refresh.service")
        assert json.loads(sets_tool("--show").stdout)["maintenance_v4"] == []
        assert not probe(server, mirror)["ok"], "the timer opened the window again"
        assert not server.file("/run/airlock-egress/maintenance-open.json").exists
    finally:
        sets_tool("--close")


def test_a_renamed_destination_opens_through_the_role():
    """A destination the server's configuration does not know yet (the role has not written
    it) opens on the first run: maintenance_open passes its definition along."""
    config = json.loads(server.check_output("cat /etc/airlock/egress.json"))
    assert "renamed-mirror" not in [d["name"] for d in config.get("maintenance", [])]
    refused = sets_tool("--open", "renamed-mirror")
    assert refused.rc != 0 and "unknown maintenance destination" in refused.stderr, "negative control"
    renamed = [{"name": "renamed-mirror", "cidrs": [f"{DECOY_IP}/32"], "ports": [9000]}]
    try:
        ansible_playbook("""
- hosts: openhands
  gather_facts: false
  tasks:
    - name: Open the window under the new name
      ansible.builtin.include_role: {name: egress_firewall, tasks_from: maintenance_open}
""", {"egress_firewall_maintenance_destinations": renamed, "egress_firewall_maintenance_open": ["renamed-mirror"]})
        assert json.loads(sets_tool("--show").stdout)["maintenance_open"] == ["renamed-mirror"]
        assert probe(server, {"kind": "tcp", "host": DECOY_IP, "port": 9000})["ok"]
    finally:
        sets_tool("--close")
    assert not probe(server, {"kind": "tcp", "host": DECOY_IP, "port": 9000})["ok"]


# ----------------------------------------------------------------------------- the LLM settings
SETTINGS_PLAY = """
- hosts: openhands
  gather_facts: false
  tasks:
    - name: Compare and repair the LLM settings
      ansible.builtin.include_role: {name: openhands, tasks_from: settings.yml}
"""
SEED_TASK = "Seed the LLM settings where the store differs"
STORE = "/var/lib/openhands/settings.json"


def stored_llm() -> dict:
    return json.loads(server.check_output(f"cat {STORE}"))["agent_settings"]["llm"]


def test_role_run_puts_back_a_key_swapped_in_the_settings_store():
    """A logged-in user (or anything that reaches the app's API) swaps the LLM key, keeping
    the model and URL: the API shows nothing (the key is masked), the store holds the new
    key, and the next run of the role compares the store itself and puts the gateway key
    back."""
    proxy = testinfra.get_host("docker://server_tier-proxy")
    assert task_status(ansible_playbook(SETTINGS_PLAY), SEED_TASK) == "skipping", \
        "positive control: the store already differs before the test touched it"
    before = http(proxy, f"http://{SERVER_IP}:3000/api/v1/settings")[1]
    swapped = "sk-swapped-by-a-user-0000"
    status, _ = http(proxy, f"http://{SERVER_IP}:3000/api/v1/settings", "POST",
                     {"agent_settings_diff": {"llm": {"api_key": swapped}}})
    assert status == 200
    assert stored_llm()["api_key"] == swapped, "the swap did not reach the store"
    assert http(proxy, f"http://{SERVER_IP}:3000/api/v1/settings")[1] == before, "the API shows the swap after all"
    assert task_status(ansible_playbook(SETTINGS_PLAY), SEED_TASK) == "changed"
    llm = stored_llm()
    assert llm["api_key"] == GATEWAY_KEY and llm["model"] == "openai/fake-model", "the gateway key is not back"


# ----------------------------------------------------------------------------- the LLM gateway
def test_a_request_the_gateway_refuses_raises_an_alert():
    """A sandbox tries a key of its own at the gateway: refused (401), logged, and an alert
    names the sandbox's address. The same sandbox's request with the gateway key is served
    and raises none (the control)."""
    proxy = testinfra.get_host("docker://server_tier-proxy")
    info = start_sandbox(proxy)
    try:
        client = server.check_output(
            "docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' " + info["name"]).strip()
        start = time.time()
        request = ("import json, sys, urllib.request, urllib.error\n"
                   "req = urllib.request.Request('http://host.docker.internal:4000/v1/chat/completions', method='POST',\n"
                   "    data=json.dumps({'model': 'fake-model', 'messages': [{'role': 'user', 'content': 'x'}]}).encode(),\n"
                   "    headers={'Content-Type': 'application/json', 'Authorization': 'Bearer ' + sys.stdin.read().strip()})\n"
                   "try:\n    print(urllib.request.urlopen(req, timeout=20).status)\n"
                   "except urllib.error.HTTPError as e:\n    print(e.code)\n")
        script = shlex.quote(request)
        served = server.run(f"echo {GATEWAY_KEY} | docker exec -i {info['name']} python3 -c {script}")
        assert served.stdout.strip() == "200", served.stdout + served.stderr
        time.sleep(2)
        assert not [a for a in alerts("llm_gateway_refused", start) if a["details"]["client"] == client], \
            "a served request raised an alert"
        refused = server.run(f"echo sk-agent-own-key-000000000000 | docker exec -i {info['name']} python3 -c {script}")
        assert refused.stdout.strip() == "401", refused.stdout + refused.stderr
        found = wait_for(lambda: [a for a in alerts("llm_gateway_refused", start) if a["key"] == f"llm_gateway_refused:{client}:401"], 20)
        assert found and found[0]["severity"] == "critical" and found[0]["details"]["refused"] == "key", found
    finally:
        http(proxy, f"http://{SERVER_IP}:3000/api/stand-in/sandboxes/{info['id']}", "DELETE")


def test_the_firewall_units_run_a_private_nft_copy():
    """The audit rules key the egress units' netfilter changes by executable (exe= compares
    inodes): the units and the tool must run a copy of nft, not /usr/sbin/nft or a link to it."""
    copy, stock = server.file("/usr/local/lib/airlock/egress-nft"), server.file("/usr/sbin/nft")
    assert copy.is_file and not copy.is_symlink and copy.mode == 0o700 and copy.user == "root"
    assert copy.sha256sum == stock.sha256sum
    inodes = server.check_output("stat -c %i /usr/local/lib/airlock/egress-nft /usr/sbin/nft").split()
    assert inodes[0] != inodes[1], "the copy is a hard link: exe= would match /usr/sbin/nft too"
    unit = server.check_output("systemctl show -p ExecStart --value airlock-egress.service")
    assert "path=/usr/local/lib/airlock/egress-nft" in unit, unit
    # The deployed tool resolves its nft to the copy, and its check (scratch namespace and
    # live table, both through the copy) works with it.
    picked = server.check_output(
        "python3 -c 'import importlib.machinery as m; "
        "print(m.SourceFileLoader(\"s\", \"/usr/local/sbin/airlock-egress-sets\").load_module().NFT)'")
    assert picked.strip() == "/usr/local/lib/airlock/egress-nft", picked
    assert sets_tool("--check").rc == 0
