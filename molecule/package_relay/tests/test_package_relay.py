"""The server's patch path: apt on the server goes through the relay on the proxy tier, the
relay fetches from the listed mirror hosts only, and nothing but the server reaches it.

Each block is asserted beside a positive control, in the same test: the same request from
where it must succeed (an allowed host through the same relay, the decoy fetched directly,
the server connecting where the decoy cannot).
"""
from __future__ import annotations

import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra

RELAY_IP, SERVER_IP, REPO_IP, DECOY_IP = "10.213.11.10", "10.213.11.20", "10.213.11.30", "10.213.11.40"
RELAY = f"http://{RELAY_IP}:3142"
PROBE_PACKAGE = "airlock-relay-probe"
RELEASE_PATH = "/dists/bookworm-security/Release"
RELAY_LOG = "/var/log/apt-cacher-ng/apt-cacher.log"
# What the daily timers' runs check before they run again (once a day).
STAMPS = " ".join(f"/var/lib/apt/periodic/{name}-stamp"
                   for name in ("update", "update-success", "upgrade", "unattended-upgrades", "download-upgradeable"))

ROOT = Path(__file__).resolve().parents[3]
HEALTH_ROWS = "/var/tmp/airlock-health-rows.json"

relay = testinfra.get_host("docker://package_relay-relay")
server = testinfra.get_host("docker://package_relay-server")
repo = testinfra.get_host("docker://package_relay-repo")
decoy = testinfra.get_host("docker://package_relay-decoy")

# One HTTP GET, through a proxy or direct: prints {"status": N, "body": TEXT}; status 0 when
# nothing answered (refused, unreachable, timed out).
GET = r"""
import json, sys, urllib.error, urllib.request
url, proxy = sys.argv[1], sys.argv[2]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {}))
try:
    with opener.open(url, timeout=15) as r:
        print(json.dumps({"status": r.status, "body": r.read(2048).decode("utf-8", "replace")}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read(2048).decode("utf-8", "replace")}))
except Exception as e:
    print(json.dumps({"status": 0, "body": f"{type(e).__name__}: {e}"}))
"""
# One TCP connection: prints {"ok": true|false, "error": TEXT}.
CONNECT = r"""
import json, socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
    print(json.dumps({"ok": True, "error": ""}))
except OSError as e:
    print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
"""


def get(host, url: str, proxy: str = "") -> dict:
    return json.loads(host.check_output(f"python3 -c {shlex.quote(GET)} {shlex.quote(url)} {shlex.quote(proxy)}"))


def connects(host, address: str, port: int) -> dict:
    return json.loads(host.check_output(f"python3 -c {shlex.quote(CONNECT)} {address} {port}"))


def version(name: str) -> str:
    return server.check_output("dpkg-query -W -f '${Version}' %s", name)


def publish(host, package_version: str) -> None:
    """A new version of the probe package in the repository on `host` (the index replaced)."""
    host.check_output(f"rm -rf /srv/airlock-test-repo/dists /srv/airlock-test-repo/pool && "
                      f"airlock-test-apt-repo repo /srv/airlock-test-repo {PROBE_PACKAGE} {package_version} "
                      "--origin Debian --label Debian-Security --codename bookworm-security --suite stable-security")


def test_relay_listens_on_the_private_address_only():
    assert relay.socket(f"tcp://{RELAY_IP}:3142").is_listening, "the relay does not listen on its private address"
    assert not relay.socket("tcp://0.0.0.0:3142").is_listening, "the relay listens on every address"
    assert not relay.socket("tcp://127.0.0.1:3142").is_listening


def test_relay_is_reached_from_the_server_only():
    """UFW admits the server's address alone to the relay's port (host_baseline_ufw_extra_rules)."""
    assert connects(server, RELAY_IP, 3142)["ok"], "positive control: the server does not reach the relay"
    refused = connects(decoy, RELAY_IP, 3142)
    assert not refused["ok"], "a host other than the server reached the relay"
    assert connects(decoy, REPO_IP, 80)["ok"], "positive control: the decoy host has a working network"


def test_relay_fetches_from_the_allow_list_only():
    """A request through the relay for a host off the list is refused (403) and nothing is
    fetched from it; the same request for a listed host goes through, and the decoy serves
    the same file to anyone who asks it directly (so the refusal is the relay's)."""
    allowed = get(server, f"http://{REPO_IP}{RELEASE_PATH}", RELAY)
    assert allowed["status"] == 200 and "Origin: Debian" in allowed["body"], allowed
    direct = get(relay, f"http://{DECOY_IP}{RELEASE_PATH}")
    assert direct["status"] == 200, f"positive control: the decoy repository does not answer: {direct}"
    before = decoy.check_output("journalctl -u airlock-test-repo -o cat | grep -c 'GET ' || true")
    assert int(before) >= 1, "the decoy's log does not show the direct request (the check below would prove nothing)"
    refused = get(server, f"http://{DECOY_IP}{RELEASE_PATH}", RELAY)
    assert refused["status"] == 403, f"the relay fetched from a host off its allow list: {refused}"
    after = decoy.check_output("journalctl -u airlock-test-repo -o cat | grep -c 'GET ' || true")
    assert before == after, "the relay contacted the decoy although it refused the request"


def test_relay_opens_no_tunnels():
    """No CONNECT (https to anywhere through the relay), not even to a listed host."""
    tunnel = get(server, f"https://{REPO_IP}/", RELAY)
    assert tunnel["status"] != 200, tunnel
    assert "403" in tunnel["body"] or tunnel["status"] == 403, tunnel


@pytest.fixture()
def direct_path_closed():
    """The server's direct way to the repository blackholed, so an upgrade can come through
    the relay only (positive control: it is closed, and the relay still reaches the repo)."""
    server.check_output(f"ip route add blackhole {REPO_IP}/32")
    try:
        assert get(server, f"http://{REPO_IP}{RELEASE_PATH}")["status"] == 0, "the direct way is still open"
        yield
    finally:
        server.run(f"ip route del blackhole {REPO_IP}/32")


def health_rows() -> list[dict]:
    """The monitoring role's health checks (tasks_from health.yml, as playbooks/health.yml
    runs them) on the server, through this scenario's inventory: its rows."""
    playbook = ROOT / "molecule" / "package_relay" / "health-rows.yml"
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"}
    out = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", os.environ["MOLECULE_INVENTORY_FILE"],
                          str(playbook), "-e", f"health_rows_path={HEALTH_ROWS}"],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    return json.loads(server.check_output(f"cat {HEALTH_ROWS}"))


DAILY_TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")


def unit(name: str, *props: str) -> dict:
    out = server.check_output(f"systemctl show --timestamp=us+utc {name} " + " ".join(f"-p {p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines())


def instant(value: str) -> datetime.datetime | None:
    """A systemd timestamp as --timestamp=us+utc prints it ("Tue 2026-12-01 20:03:01.123456
    UTC"; a timer's trigger comes in whole seconds, "Tue 2026-12-01 20:03:01 UTC"); None
    when unset."""
    if not value:
        return None
    text = " ".join(value.split()[1:3])
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S")


def last_trigger(timer: str) -> datetime.datetime | None:
    return instant(unit(timer, "LastTriggerUSec")["LastTriggerUSec"])


def fire_on_its_own(timer: str, before: datetime.datetime | None, wait: int = 180) -> None:
    """The timer's schedule replaced, for this test only, by "one second after it starts"
    (a runtime drop-in, gone on reboot and removed by the caller); the timer restarted, then
    waited for until it has triggered its service on its own and that run of the service has
    finished. Nobody starts the service: what runs is what the timer starts."""
    server.check_output(f"mkdir -p /run/systemd/system/{timer}.d && printf '%s' "
                        + shlex.quote("[Timer]\nOnCalendar=\nOnActiveSec=1s\nRandomizedDelaySec=0\n")
                        + f" > /run/systemd/system/{timer}.d/airlock-test-now.conf"
                        " && systemctl daemon-reload && systemctl restart " + timer)
    service = timer.replace(".timer", ".service")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        triggered = last_trigger(timer)
        state = unit(service, "InactiveExitTimestamp", "ActiveState", "Result")
        # The run the trigger started: the service left "inactive" after the trigger (a job
        # the timer queued may still wait on its ordering, with the service inactive and the
        # result of an earlier run), and it is over. The trigger's time is in whole seconds,
        # the service's in microseconds: a run in the trigger's second counts.
        started = instant(state["InactiveExitTimestamp"])
        if (triggered and triggered != before and started and started >= triggered
                and state["ActiveState"] in ("inactive", "failed")):
            assert state["Result"] == "success", f"{service}, started by {timer}, ended with {state['Result']}"
            return
        time.sleep(2)
    raise AssertionError(f"{timer} did not start and finish {service} within {wait} s")


def test_daily_upgrade_installs_the_new_version_through_the_relay(direct_path_closed):
    """1.0 of the probe package is installed; the repository publishes 2.x; the server's own
    daily timers, as deployed (enabled and waiting), start apt-daily (the package lists) and
    apt-daily-upgrade (unattended-upgrades, with host_baseline's security-only origins), which
    install 2.x, fetched through the relay. Only the timers' schedule is brought forward; the
    test starts no service itself. The health report's row shows the time of that upgrade."""
    for timer in DAILY_TIMERS:
        assert server.check_output(f"systemctl is-enabled {timer}") == "enabled", f"{timer} is not enabled"
        assert server.check_output(f"systemctl is-active {timer}") == "active", f"{timer} is not waiting"
    server.check_output(f"airlock-test-apt-repo deb {PROBE_PACKAGE} 1.0 /var/tmp/airlock-relay-probe && "
                        f"dpkg -i /var/tmp/airlock-relay-probe/{PROBE_PACKAGE}_1.0_all.deb")
    assert version(PROBE_PACKAGE) == "1.0"
    # A version of its own per run: the relay keeps what it fetched, and an archive never
    # publishes different files under one version.
    new = f"2.{int(time.time())}"
    publish(repo, new)
    try:
        server.check_output("rm -f " + STAMPS)
        fire_on_its_own("apt-daily.timer", last_trigger("apt-daily.timer"))
        policy = server.check_output(f"apt-cache policy {PROBE_PACKAGE}")
        assert f"Candidate: {new}" in policy, policy
        assert version(PROBE_PACKAGE) == "1.0", "upgraded before apt-daily-upgrade ran (the check below would prove nothing)"
        fire_on_its_own("apt-daily-upgrade.timer", last_trigger("apt-daily-upgrade.timer"))
        log = server.run("tail -n 30 /var/log/unattended-upgrades/unattended-upgrades.log").stdout
        assert version(PROBE_PACKAGE) == new, log
        relay_log = relay.check_output(f"cat {RELAY_LOG}")
        fetched = [line for line in relay_log.splitlines() if f"{PROBE_PACKAGE}_{new}_all.deb" in line]
        assert fetched and any(SERVER_IP in line for line in fetched), relay_log[-2000:]
        installed = [line for line in log.splitlines() if "INFO All upgrades installed" in line][-1][:19]
        row = next(r for r in health_rows() if r["check"] == "unattended upgrades")
        assert row["status"] == "OK", row
        assert row["detail"].endswith(f"last upgrade installed {installed}"), (row, installed)
    finally:
        server.run("rm -rf " + " ".join(f"/run/systemd/system/{t}.d/airlock-test-now.conf" for t in DAILY_TIMERS)
                   + " && systemctl daemon-reload && systemctl restart " + " ".join(DAILY_TIMERS))
        server.run(f"dpkg --purge {PROBE_PACKAGE}; rm -rf /var/tmp/airlock-relay-probe")
        publish(repo, "1.0")
        server.run("rm -f " + STAMPS)


def test_the_health_report_names_upgrades_waiting_for_a_reboot():
    """An installed upgrade that needs a reboot (what a kernel package's hook leaves in
    /run/reboot-required[.pkgs]) turns the row to WARN with the package named; without the
    marker, on the same host, the same row is OK (the control)."""
    server.check_output("rm -f /run/reboot-required /run/reboot-required.pkgs")
    row = next(r for r in health_rows() if r["check"] == "reboot required")
    assert row["status"] == "OK", row
    try:
        server.check_output("echo '*** System restart required ***' > /run/reboot-required && "
                            "printf 'linux-image-6.1.0-99-amd64\\nlibc6\\nlibc6\\n' > /run/reboot-required.pkgs")
        row = next(r for r in health_rows() if r["check"] == "reboot required")
        assert row == {"check": "reboot required", "status": "WARN",
                       "detail": "upgrades wait for a reboot: linux-image-6.1.0-99-amd64, libc6"}, row
    finally:
        server.run("rm -f /run/reboot-required /run/reboot-required.pkgs")


def test_server_apt_is_configured_for_the_relay():
    config = server.check_output("apt-config dump Acquire::http::Proxy")
    assert f'Acquire::http::Proxy "{RELAY}";' in config, config
