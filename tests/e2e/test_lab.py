"""The lab end to end, as a user runs it (the README's first command, then some).

Lab up from nothing -> site.yml -> validate.yml all green -> site.yml again reports
changed=0 -> a single-role rerun (--tags) repairs deliberate drift -> lab down leaves
nothing behind. The steps share one lab and run in order (pytest runs a module's tests in
file order); a failed step skips the rest.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
ohapi = load_module(ROOT / "tools" / "realserver" / "ohapi.py")
proxyurls = load_module(ROOT / "tools" / "realserver" / "proxyurls.py")
# The test builds a lab of its own beside any lab the user has running: its own name,
# addresses and published ports (inventories/lab/group_vars/all/lab.yml reads these).
LAB = {"AIRLOCK_LAB_NAME": "e2e", "AIRLOCK_LAB_NET": "10.214",
       "AIRLOCK_LAB_HTTPS_PORT": "18443", "AIRLOCK_LAB_HTTP_PORT": "18080"}
PREFIX = "airlock-" + LAB["AIRLOCK_LAB_NAME"]
HOST = {"proxy": "airlock-lab-proxy", "openhands": "airlock-lab-openhands"}  # inventory names
# The lab's public URL (airlock_public_url: what sandbox URLs must start with) and where
# this machine reaches the proxy (its published loopback port).
PUBLIC = f"https://airlock.localhost:{LAB['AIRLOCK_LAB_HTTPS_PORT']}"
BASE = f"https://127.0.0.1:{LAB['AIRLOCK_LAB_HTTPS_PORT']}"
STATE: dict = {}
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def playbook(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, **LAB, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0"}
    cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), *args]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    (ROOT / "reports").mkdir(exist_ok=True)
    name = "e2e-" + "-".join(re.sub(r"[^a-z0-9]+", "_", a.lower()).strip("_") for a in args)[:80]
    (ROOT / "reports" / f"{name}.log").write_text(res.stdout + res.stderr)
    return res


def recap(res: subprocess.CompletedProcess) -> dict[str, dict[str, int]]:
    return {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}
            for m in RECAP.findall(res.stdout)}


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def lab_objects() -> list[str]:
    found = docker("ps", "-a", "--filter", f"name={PREFIX}-", "--format", "{{.Names}}").split()
    found += [n for n in docker("network", "ls", "--format", "{{.Name}}").split() if n.startswith(PREFIX + "-")]
    found += [n for n in docker("volume", "ls", "--format", "{{.Name}}").split() if n.startswith(PREFIX + "-")]
    return found


def ok(res: subprocess.CompletedProcess) -> None:
    tail = "\n".join((res.stdout + res.stderr).splitlines()[-60:])
    assert res.returncode == 0, f"ansible-playbook failed:\n{tail}"


def test_lab_comes_up_from_nothing():
    ok(playbook("playbooks/lab_down.yml"))
    assert lab_objects() == []
    ok(playbook("playbooks/lab_up.yml"))
    names = set(lab_objects())
    for host in ("proxy", "openhands", "router", "llm", "decoy"):
        assert f"{PREFIX}-{host}" in names


def test_site_converges():
    ok(playbook("site.yml"))
    # The first backup, as the daily timer would take it (validate.yml checks for one).
    ok(playbook("playbooks/backup.yml"))


def test_backups_are_encrypted_and_checked():
    """The server's restic repository holds the lab's LLM key nowhere in clear, while the
    same search finds it in the gateway's configuration it backed up; restic check passes."""
    key = (ROOT / f".{LAB['AIRLOCK_LAB_NAME']}" / "llm-api-key").read_text().strip()
    server = f"{PREFIX}-openhands"
    found = subprocess.run(["docker", "exec", server, "grep", "-rlF", key, "/etc/airlock-llm-gateway"],
                           capture_output=True, text=True)
    assert found.returncode == 0 and found.stdout.strip(), "positive control: the key is in the backed-up configuration"
    leak = subprocess.run(["docker", "exec", server, "grep", "-rlF", key, "/var/backups/airlock"],
                          capture_output=True, text=True)
    assert leak.returncode == 1 and leak.stdout == "", f"the LLM key in clear in the repository: {leak.stdout}"
    docker("exec", server, "/usr/local/sbin/airlock-backup", "check")


def test_sandbox_urls_are_the_proxys_and_need_the_login():
    """The stand-in hands out sandbox URLs from the variable OpenHands 1.11.0 reads
    (SANDBOX_CONTAINER_URL_PATTERN, see standin.sandbox_url_pattern): a role that sets
    another name leaves them at http://localhost:<port> and fails here. Each URL is the
    public URL plus /runtime/<host port>, and answers through the proxy with the login
    (the agent server's event websocket included) and 401 without it."""
    login = ("admin", (ROOT / f".{LAB['AIRLOCK_LAB_NAME']}" / "admin.password").read_text().strip())
    app = ohapi.Api(BASE, login=login, insecure=True, timeout=60)
    info = app.ok("POST", "/api/stand-in/sandboxes", {})
    try:
        deadline = time.monotonic() + 90
        while not info.get("exposed_urls") and time.monotonic() < deadline:
            time.sleep(2)
            info = app.ok("GET", f"/api/stand-in/sandboxes/{info['id']}")
        urls = {u["name"]: u for u in info.get("exposed_urls") or []}
        assert set(urls) == {"AGENT_SERVER", "VSCODE", "WORKER_1", "WORKER_2"}, info
        assert f"tkn={info['session_api_key']}" in urls["VSCODE"]["url"], urls["VSCODE"]
        for name, exposed in urls.items():
            proxyurls.check_prefix(exposed["url"], PUBLIC, info["ports"][str(exposed["port"])])
            url = proxyurls.via_proxy(exposed["url"], PUBLIC, BASE)
            status, body = 0, b""
            while time.monotonic() < deadline:  # the sandbox's servers start after its report
                status, body = proxyurls.http(url, login)
                if status == 200:
                    break
                time.sleep(2)
            assert status == 200 and b"stand_in" in body, (name, url, status, body)
            assert proxyurls.refused(lambda url=url: proxyurls.http(url)[0]) == 401, (name, url)
        events = proxyurls.via_proxy(urls["AGENT_SERVER"]["url"], PUBLIC, BASE) + "/sockets/events/stand-in"
        assert proxyurls.ws_messages(events, login, send="ping") == ["stand-in echo: ping"]
        assert proxyurls.refused(lambda: proxyurls.ws_status(events)) == 401
        # The app's own call through the URL it hands out, as 1.11.0 health-checks a new
        # sandbox: polled until the sandbox's server answers (the proxy says 502 before).
        via, deadline = info.get("health_via_url") or {}, time.monotonic() + 60
        while not via.get("ok") and time.monotonic() < deadline:
            time.sleep(2)
            via = app.ok("GET", f"/api/stand-in/sandboxes/{info['id']}").get("health_via_url") or {}
        STATE["health_via_url"] = via
        print("app server -> sandbox through the handed-out URL:", via)
    finally:
        app.request("DELETE", f"/api/stand-in/sandboxes/{info['id']}")


def test_the_server_reaches_its_sandboxes_through_the_handed_out_url():
    """OpenHands 1.11.0 calls its sandboxes at the URLs it hands out: the stand-in's app, in its
    container on the OpenHands host, called the sandbox's public URL (the proxy, through the
    app's own path: its public name mapped to the proxy, the firewall's route, the proxy's
    certificate trusted) and the sandbox answered."""
    via = STATE.get("health_via_url") or {}
    assert via.get("ok") and via.get("status") == 200, via


CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=4).close()
    print("connected")
except OSError as exc:
    print("failed", type(exc).__name__)
"""


def test_a_sandbox_drop_raises_the_deployed_alert():
    """Drop -> alert in the lab as deployed: a sandbox the app started connects to the lab's
    decoy, the egress firewall drops it, the drop logger (ulogd2) writes its line and the
    monitoring role's alertd, as site.yml configured it, raises the egress alert naming the
    sandbox and the decoy in the lab's alert sink. Positive control: the lab router (no
    firewall of ours in its way) connects to the decoy on the same port. The drop log is
    rate-limited and alerts are de-duplicated per source, destination and port, and
    validate.yml probes the decoy too, so each of the decoy's ports is tried in turn until
    one drop is alerted."""
    net, server = LAB["AIRLOCK_LAB_NET"], f"{PREFIX}-openhands"
    decoy = f"{net}.12.20"  # lab_addresses.decoy
    login = ("admin", (ROOT / f".{LAB['AIRLOCK_LAB_NAME']}" / "admin.password").read_text().strip())
    app = ohapi.Api(BASE, login=login, insecure=True, timeout=60)
    info = app.ok("POST", "/api/stand-in/sandboxes", {})
    try:
        name = info["name"]
        ip = docker("exec", server, "docker", "inspect", "-f",
                    "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name).strip()
        assert ip, info
        found, port = [], 0
        for port in (80, 443, 8000):  # the decoy's TCP listeners (playbooks/lab_up.yml)
            control = docker("exec", f"{PREFIX}-router", "python3", "-c", CONNECT, decoy, str(port)).strip()
            assert control == "connected", f"positive control: the router does not reach the decoy on {port}: {control}"
            start = time.time()
            got = docker("exec", server, "docker", "exec", name, "python3", "-c", CONNECT, decoy, str(port)).strip()
            assert got.startswith("failed"), f"the sandbox reached the decoy on {port}: {got}"
            key = f"egress_drop:{ip}:{decoy}:TCP:{port}"
            deadline = time.monotonic() + 30
            while not found and time.monotonic() < deadline:
                text = docker("exec", server, "sh", "-c", "cat /var/log/airlock/alerts.jsonl 2>/dev/null || true")
                found = [a for a in map(json.loads, filter(None, text.splitlines()))
                         if a.get("key") == key and a.get("ts", 0) >= start - 1]
                time.sleep(0.5)
            if found:
                break
            time.sleep(6)  # not logged (the rate limit's bucket) or de-duplicated: the next port
        assert found, f"no drop of the sandbox ({ip}) to the decoy was alerted; drop log: " + docker(
            "exec", server, "sh", "-c", "tail -5 /var/log/ulog/airlock-egress-drops.log 2>&1 || true")
        alert = found[0]
        assert alert["type"] == "egress_drop" and alert["details"]["dst"] == decoy, alert
        assert decoy in alert["summary"] and alert["host"], alert
        STATE["drop_alert"] = {"port": port, "latency_s": round(alert["ts"] - start, 2)}
    finally:
        app.request("DELETE", f"/api/stand-in/sandboxes/{info['id']}")


def test_the_server_is_patched_through_the_relay_alone():
    """The server's packages come through the package relay on the proxy tier, as site.yml
    composed it (the lab's maintenance window holds nothing, so no mirror is open to the
    server): the deployed server's apt points at the relay, its apt-get update reaches the
    Debian archive, and the relay's log names the server for it. The relay's port is the
    server host's alone: the host connects to it (the positive control) and a sandbox the
    app started, probing the same address and port, does not."""
    net, server, proxy = LAB["AIRLOCK_LAB_NET"], f"{PREFIX}-openhands", f"{PREFIX}-proxy"
    relay, server_ip = f"{net}.11.10", f"{net}.11.20"  # lab_addresses.proxy_private, openhands_private
    log = "/var/log/apt-cacher-ng/apt-cacher.log"
    assert docker("exec", server, "apt-config", "dump", "Acquire::http::Proxy").strip() == \
        f'Acquire::http::Proxy "http://{relay}:3142";'
    before = len(docker("exec", proxy, "sh", "-c", f"cat {log} 2>/dev/null || true").splitlines())
    update = subprocess.run(["docker", "exec", server, "apt-get", "update", "-q"], capture_output=True, text=True)
    assert update.returncode == 0 and "Err:" not in update.stdout, update.stdout[-2000:] + update.stderr[-2000:]
    served = docker("exec", proxy, "sh", "-c", f"cat {log} 2>/dev/null || true").splitlines()[before:]
    assert any(server_ip in line for line in served), f"the relay's log does not name the server: {served[-10:]}"
    login = ("admin", (ROOT / f".{LAB['AIRLOCK_LAB_NAME']}" / "admin.password").read_text().strip())
    app = ohapi.Api(BASE, login=login, insecure=True, timeout=60)
    info = app.ok("POST", "/api/stand-in/sandboxes", {})
    try:
        control = docker("exec", server, "python3", "-c", CONNECT, relay, "3142").strip()
        assert control == "connected", f"positive control: the server's host does not reach the relay: {control}"
        for attempt in range(3):  # a patient agent: again and again
            got = docker("exec", server, "docker", "exec", info["name"], "python3", "-c", CONNECT, relay, "3142").strip()
            assert got.startswith("failed"), f"a sandbox reached the package relay (attempt {attempt + 1}): {got}"
    finally:
        app.request("DELETE", f"/api/stand-in/sandboxes/{info['id']}")


def test_validate_is_all_green():
    res = playbook("playbooks/validate.yml")
    report = json.loads((ROOT / "reports" / f"validate-{LAB['AIRLOCK_LAB_NAME']}.json").read_text())
    failed = [c for c in report["checks"] if c["ok"] is False]
    assert res.returncode == 0 and report["passed"] and not failed, json.dumps(failed, indent=1)
    # The report must really have proven the claims, not skipped them.
    checks = " ".join(c["check"] for c in report["checks"] if c["ok"])
    for claim in ("reaches the approved LLM endpoint", "is blocked", "no login: 401", "right login: 200",
                  "websocket with login: 101", "TLS 1.0 and 1.1 refused", "answers the proxy",
                  "is closed to", "fail2ban jails active", "the public URL) answers the app's network",
                  "is closed to a sandbox"):
        assert claim in checks, f"validate.yml did not prove: {claim}"


# A task's header, then (profile_tasks) its timing line, then its first result.
TASK_RESULT = r"TASK \[{}[^\n]*\n(?:[^\n]*\d:\d\d:\d\d[^\n]*\n)?(?:{}): "
LISTENER_STARTED = re.compile(TASK_RESULT.format(re.escape("Start a listener on a published sandbox port"), "changed"))


@pytest.mark.parametrize("fault, where", [
    # The first play fails right after the listener started (its rescue cleans up).
    ("validate_app_network=airlock-no-such-network", "Remove the sandbox listener after a failure"),
    # The last play's client probe fails, after the server's probes used the listener (always).
    ("validate_proxy_port=1", "Stop the sandbox listener"),
])
def test_a_failed_validation_leaves_no_sandbox_listener(fault, where):
    res = playbook("playbooks/validate.yml", "-e", fault)
    out = res.stdout + res.stderr
    assert res.returncode != 0, f"validate.yml passed with {fault}"
    # The positive control: this run did start the listener, so it had one to remove.
    assert LISTENER_STARTED.search(out), f"the run with {fault} never started its sandbox listener"
    assert re.search(TASK_RESULT.format(re.escape(where), "changed|ok"), out), f"{where!r} did not run"
    left = docker("exec", f"{PREFIX}-openhands", "docker", "ps", "-a", "-q", "--filter", "name=airlock-validate-sandbox")
    assert left.strip() == "", f"a failed validation ({fault}) left its sandbox listener behind: {left}"


def test_site_rerun_changes_nothing():
    res = playbook("site.yml")
    ok(res)
    changed = {h: r["changed"] for h, r in recap(res).items() if r["changed"]}
    assert recap(res) and not changed, f"second run changed something: {changed}"


def test_single_role_rerun_repairs_drift():
    # Drift 1: someone edits the proxy's site configuration by hand.
    site = "/etc/nginx/nginx.conf"
    docker("exec", f"{PREFIX}-proxy", "sh", "-c", f"echo '# hand edit' >> {site}")
    res = playbook("site.yml", "--tags", "nginx_proxy")
    ok(res)
    assert recap(res)[HOST["proxy"]]["changed"] >= 1
    assert "# hand edit" not in docker("exec", f"{PREFIX}-proxy", "cat", site)
    # Drift 2: someone flushes the egress firewall's table on the server. The refresh timer
    # repairs drift too (every few minutes): hold it while the role's run is what is tested,
    # or a timer run in between repairs first and the role rightly finds nothing to do.
    docker("exec", f"{PREFIX}-openhands", "systemctl", "stop", "airlock-egress-refresh.timer")
    try:
        docker("exec", f"{PREFIX}-openhands", "nft", "delete", "table", "inet", "airlock")
        res = playbook("site.yml", "--tags", "egress_firewall")
    finally:
        docker("exec", f"{PREFIX}-openhands", "systemctl", "start", "airlock-egress-refresh.timer")
    ok(res)
    assert recap(res)[HOST["openhands"]]["changed"] >= 1
    assert "table inet airlock" in docker("exec", f"{PREFIX}-openhands", "nft", "list", "tables")
    ok(playbook("playbooks/validate.yml"))


def test_lab_down_leaves_nothing():
    ok(playbook("playbooks/lab_down.yml"))
    assert lab_objects() == []
    assert not (ROOT / f".{LAB['AIRLOCK_LAB_NAME']}").exists()
