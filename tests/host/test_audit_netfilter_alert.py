"""Netfilter changes and audit tampering raise alerts, from this machine's real kernel.

The auditd role is rendered on localhost (its netfilter rules keyed to a private nft copy in
a temporary directory, standing in for the egress firewall's /usr/local/lib/airlock/egress-nft),
its rules fragment is loaded with `auditctl -R`, and alertd runs with the monitoring role's
netfilter and audit_tamper watchers on the real audit log. Then, each in a network namespace
the test creates (the host's own firewall is never touched):

  - an intruder from a login session runs /usr/sbin/nft        -> critical alert (key firewall)
  - the refresh timer's private copy, no login session         -> no alert; the positive
    control is that its NETFILTER_CFG and SYSCALL records (key airlock_egress_refresh) are in
    the log, and that the same copy from a login session alerts (airlock_egress_admin, warning)
  - a daemon (no login session, like dockerd's iptables) runs /usr/sbin/nft -> warning alert
  - a program the rules do not know (python's own copy of the nft binary path) -> critical
  - `auditctl -d` of a rule (or -D on an otherwise empty rule list) and `auditctl -e 0`
    -> critical audit_tamper alerts
  - a firewall tool run by a daemon (fail2ban's bans) -> logged under firewall_daemon, no
    alert; the same from a login session -> the audit watcher's firewall alert

Everything is removed again: the rules the test added, the kernel's enabled flag, the private
auditd (started only when none runs) and alertd. The machine is shared and busy (other tests
start containers, whose dockerd iptables runs show up in the same log), so alerts are picked
by the table names and login uids this test uses. A lock file serialises the tests that change
the kernel's audit state.
"""
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
ALERTD = ROOT / "roles" / "monitoring" / "files" / "alertd.py"
UNSET = "4294967295"


def run(*argv, check=True, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=check, **kw)


def audit_status():
    out = run("auditctl", "-s").stdout
    return {k: v for k, v in (line.split(" ", 1) for line in out.splitlines() if " " in line)}


def rule_lines(path):
    return [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def removal_command(line):
    args = shlex.split(line)
    args[0] = {"-w": "-W", "-a": "-d", "-A": "-d"}.get(args[0], args[0])
    return args


def as_loginuid(uid):
    def set_it():
        with open("/proc/self/loginuid", "w") as f:
            f.write(str(uid))
    return set_it


def in_netns(argv, loginuid):
    """argv in a new network namespace (dropped when it exits), with this login uid."""
    return subprocess.run(["unshare", "--net", "--", *argv], preexec_fn=as_loginuid(loginuid),
                          capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def kernel_audit():
    if os.geteuid() != 0:
        pytest.skip("needs root: loading audit rules requires CAP_AUDIT_CONTROL")
    for tool in ("auditctl", "auditd", "ausearch", "nft", "unshare"):
        assert shutil.which(tool), f"{tool} not found (apt-get install auditd nftables util-linux)"
    lock = open("/tmp/airlock-audit-kernel.lock", "w")  # noqa: SIM115 (held for the module)
    fcntl.flock(lock, fcntl.LOCK_EX)
    probe = run("auditctl", "-s", check=False)
    if probe.returncode != 0:
        pytest.skip(f"the kernel refuses audit here: auditctl -s -> {probe.stderr.strip()}")
    status = audit_status()
    if status.get("enabled") == "2":
        pytest.skip("the kernel audit rules are immutable (-e 2) until reboot; no rule can be added")
    if status.get("loginuid_immutable", "0").startswith("1"):
        pytest.skip("login uids are immutable on this kernel; the test sets them per process")
    yield status
    lock.close()


@pytest.fixture(scope="module")
def setup(kernel_audit, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("netfilter")
    (tmp / "lib").mkdir()
    private_nft = tmp / "lib" / "egress-nft"
    shutil.copy2(shutil.which("nft"), private_nft)  # a copy: exe= matches the inode
    private_nft.chmod(0o700)
    (tmp / "conf").mkdir(mode=0o750)
    (tmp / "log").mkdir(mode=0o700)
    (tmp / "airlock-config").mkdir()
    (tmp / "state").mkdir()
    playbook = tmp / "render.yml"
    playbook.write_text("- hosts: localhost\n  connection: local\n  gather_facts: false\n  roles:\n    - role: auditd\n")
    extra = {
        "auditd_install_packages": False, "auditd_apply": False,
        "auditd_rules_dir": str(tmp / "rules.d"), "auditd_conf_path": str(tmp / "conf" / "auditd.conf"),
        "auditd_log_file": str(tmp / "log" / "audit.log"),
        "auditd_openhands_state_paths": [str(tmp / "state")],
        "auditd_airlock_config_paths": [str(tmp / "airlock-config")],
        "auditd_netfilter_refresh_exe": str(private_nft),
        "ansible_python_interpreter": sys.executable,
    }
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    res = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(playbook), "-e", json.dumps(extra)],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    rules = tmp / "rules.d" / "30-airlock.rules"
    lines = rule_lines(rules)
    netfilter = [ln for ln in lines if "-S sendmsg" in ln]
    assert any(f"exe={private_nft} -F auid=unset -k airlock_egress_refresh" in ln for ln in netfilter), netfilter
    assert any("exe=/usr/sbin/nft -k firewall" in ln for ln in netfilter), netfilter

    before = run("auditctl", "-l").stdout
    daemon = alertd = None
    log = Path("/var/log/audit/audit.log")
    state = {"tmp": tmp, "private_nft": private_nft, "rules": rules, "lines": lines, "before": before}
    try:
        res = run("auditctl", "-R", str(rules), check=False)
        assert res.returncode == 0, f"auditctl -R refused the rendered rules:\n{res.stderr}"
        if kernel_audit.get("pid", "0") == "0":
            log = tmp / "log" / "audit.log"
            daemon = subprocess.Popen(["auditd", "-n", "-s", "enable", "-c", str(tmp / "conf")],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            deadline = time.monotonic() + 15
            while audit_status().get("pid") != str(daemon.pid) or not log.exists():
                assert daemon.poll() is None, f"auditd refused the rendered auditd.conf:\n{daemon.stdout.read()}"
                assert time.monotonic() < deadline, "the private auditd did not register with the kernel"
                time.sleep(0.2)
        elif kernel_audit.get("enabled") == "0":
            run("auditctl", "-e", "1")
        alerts = tmp / "alerts.jsonl"
        cfg = {"host": "netfilter-test", "dedup_window": 0, "poll_interval": 0.2,
               "watchers": [{"type": "netfilter", "source": {"file": str(log)},
                             "low_keys": ["netfilter_daemon", "airlock_egress_admin"]},
                            {"type": "audit_tamper", "source": {"file": str(log)}},
                            {"type": "audit", "source": {"file": str(log)}, "keys": ["firewall"]}],
               "sinks": [{"type": "log", "path": str(alerts)}]}
        (tmp / "alertd.json").write_text(json.dumps(cfg))
        alertd = subprocess.Popen([sys.executable, str(ALERTD), "--config", str(tmp / "alertd.json")],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(2)  # alertd opens the log at its end: give the tail time to open it
        assert alertd.poll() is None, alertd.stdout.read()
        state.update(log=log, alerts=alerts, alertd=alertd)
        yield state
    finally:
        for line in lines:
            run("auditctl", *removal_command(line), check=False)
        if alertd is not None:
            alertd.send_signal(signal.SIGTERM)
            alertd.wait(timeout=15)
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=15)
        run("auditctl", "-e", kernel_audit.get("enabled", "0"), check=False)
        assert run("auditctl", "-l").stdout == before, "the test did not restore the kernel's rule list"
        assert audit_status().get("enabled") == kernel_audit.get("enabled")


def alerts_matching(setup, pred, timeout=15.0, want=True):
    """Alerts in the sink for which pred(alert) holds: waits until one is there (want) or for
    the whole timeout (not want, to prove none comes)."""
    deadline = time.monotonic() + timeout
    found = []
    while time.monotonic() < deadline:
        text = setup["alerts"].read_text() if setup["alerts"].exists() else ""
        found = [a for a in map(json.loads, text.splitlines()) if pred(a)]
        if found and want:
            return found
        time.sleep(0.3)
    return found


def changed_table(name):
    return lambda a: a["type"] == "netfilter" and any(c["table"].startswith(f"{name}:") for c in a["details"]["changes"])


def log_has(setup, pattern, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = setup["log"].read_text(errors="replace")
        if re.search(pattern, text):
            return True
        time.sleep(0.3)
    return False


def test_intruder_nft_alerts_critical(setup):
    in_netns(["nft", "add", "table", "inet", "airlock_probe_intruder"], 1000)
    (a,) = alerts_matching(setup, changed_table("airlock_probe_intruder"))
    assert a["severity"] == "critical", a
    assert a["details"]["keys"] == ["firewall"] and a["details"]["auid"] == "1000"
    assert a["details"]["exe"] == "/usr/sbin/nft" and a["details"]["correlated"]


def test_refresh_copy_is_quiet_beside_its_positive_controls(setup):
    nft = str(setup["private_nft"])
    in_netns([nft, "add", "table", "inet", "airlock_probe_refresh"], UNSET)
    # The records did arrive, with the refresh key: the silence below is the watcher's choice.
    serial = r"msg=audit\(([0-9.]+:[0-9]+)\): table=airlock_probe_refresh:"
    assert log_has(setup, serial), "no NETFILTER_CFG record for the refresh copy's change"
    event = re.search(serial, setup["log"].read_text(errors="replace")).group(1)
    assert log_has(setup, rf"type=SYSCALL msg=audit\({re.escape(event)}\):.*key=\"airlock_egress_refresh\"")
    # The same copy from a login session is an admin's change: it alerts (warning).
    in_netns([nft, "add", "table", "inet", "airlock_probe_admin"], 1000)
    (admin,) = alerts_matching(setup, changed_table("airlock_probe_admin"))
    assert admin["severity"] == "warning" and admin["details"]["keys"] == ["airlock_egress_admin"]
    # The refresh change came before the admin's, whose alert is in: nothing for it.
    assert alerts_matching(setup, changed_table("airlock_probe_refresh"), timeout=3, want=False) == []


def test_daemon_nft_alerts_warning(setup):
    in_netns(["nft", "add", "table", "inet", "airlock_probe_daemon"], UNSET)
    (a,) = alerts_matching(setup, changed_table("airlock_probe_daemon"))
    assert a["severity"] == "warning" and a["details"]["keys"] == ["netfilter_daemon"], a


def test_unknown_program_alerts_critical(setup):
    # A program the rules do not name: a second copy of nft (another inode, another path).
    other = setup["tmp"] / "other-nft"
    shutil.copy2(shutil.which("nft"), other)
    in_netns([str(other), "add", "table", "inet", "airlock_probe_other"], UNSET)
    (a,) = alerts_matching(setup, changed_table("airlock_probe_other"))
    assert a["severity"] == "critical" and a["details"]["keys"] == [] and a["details"]["exe"] == str(other), a


def test_a_daemons_firewall_tool_is_logged_not_alerted_beside_a_login_sessions(setup):
    """fail2ban's ban action and dockerd run the firewall tools without a login session:
    each run is in the log under its own key (firewall_daemon), and the audit watcher, which
    alerts on the tools' key (firewall), says nothing; the same tool from a login session
    alerts (the positive control). Before, every ban on the proxy was a critical alert."""
    in_netns(["nft", "list", "tables"], UNSET)
    assert log_has(setup, r'type=SYSCALL .*exe="/usr/sbin/nft".*key="firewall_daemon"'), \
        "the daemon's run of nft is not in the log under firewall_daemon"
    in_netns(["nft", "list", "tables"], 1002)
    # (the audit watcher reports the log's enriched AUID: a name, or unknown(N) for no user)
    login = alerts_matching(setup, lambda a: a["type"] == "audit" and a["details"]["key"] == "firewall"
                            and a["details"]["auid"] in ("1002", "unknown(1002)"))
    assert login and login[0]["details"]["exe"] == "/usr/sbin/nft", login
    daemon = alerts_matching(setup, lambda a: a["type"] == "audit" and a["details"]["auid"] in ("unset", UNSET, "-1"),
                             timeout=3, want=False)
    assert daemon == [], daemon


def test_audit_rule_removal_and_audit_off_alert(setup):
    lines = setup["lines"]
    if setup["before"].strip() == "No rules":  # only the test's rules are loaded: -D, then reload them
        run("sh", "-c", "auditctl -D", preexec_fn=as_loginuid(1000))
        restore = ["auditctl", "-R", str(setup["rules"])]
    else:  # other rules are loaded too: remove one of the test's own rules only, then add it back
        run("sh", "-c", shlex.join(["auditctl", *removal_command(lines[-1])]), preexec_fn=as_loginuid(1000))
        restore = ["auditctl", *shlex.split(lines[-1])]
    removed = alerts_matching(setup, lambda a: a["type"] == "audit_tamper" and a["details"]["op"] == "remove_rule"
                              and a["details"]["auid"] == "1000")
    assert removed and removed[0]["severity"] == "critical"
    res = run(*restore, check=False)
    assert res.returncode == 0, res.stderr
    run("sh", "-c", "auditctl -e 0", preexec_fn=as_loginuid(1000))
    try:
        off = alerts_matching(setup, lambda a: a["type"] == "audit_tamper" and "auditing turned off" in a["summary"]
                              and a["details"]["auid"] == "1000")
        assert off and off[0]["severity"] == "critical"
    finally:
        run("auditctl", "-e", "1")
    # Auditing is back: a change is seen again.
    in_netns(["nft", "add", "table", "inet", "airlock_probe_after"], 1000)
    assert alerts_matching(setup, changed_table("airlock_probe_after"))
