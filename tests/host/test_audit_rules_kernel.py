"""The auditd role's rendered rules, loaded into this machine's real kernel.

Containers cannot load audit rules (the kernel refuses audit netlink from a non-initial
PID namespace), so the Molecule scenario only renders them. This test renders the role on
localhost into a temporary directory (the OpenHands state path pointed at a temporary
directory), loads the rules fragment with `auditctl -R`, checks `auditctl -l` lists every
rule, triggers events and finds them by key with `ausearch -k`, then removes exactly the
rules it added and restores the kernel's enabled flag.

If no auditd is running, the test starts a private one (`auditd -n`) with the auditd.conf
the role rendered, logging to the temporary directory: that also proves the rendered
daemon configuration is accepted by auditd.

Only the rules fragment (30-airlock.rules) is loaded: the base fragment starts with -D
(delete every rule on the machine) and the finalize fragment may lock the kernel rules
until reboot (-e 2). Both are checked for content instead.

Needs root and the auditd package (auditctl, auditd, ausearch). Skips only when the
kernel refuses audit.
"""
import fcntl
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
# Files the security model says auditd watches (identity, auth, sudo rules, SSH, its own
# configuration), with their keys: each that exists on this machine must be watched, and
# an attribute change to it found by that key.
MUST_WATCH = {"/etc/passwd": "identity", "/etc/group": "identity", "/etc/shadow": "identity",
              "/etc/gshadow": "identity", "/etc/pam.d": "auth", "/etc/login.defs": "auth",
              "/etc/sudoers": "sudoers", "/etc/ssh/sshd_config": "sshd", "/etc/audit": "audit_config"}


def run(*argv, check=True, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=check, **kw)


def audit_status():
    out = run("auditctl", "-s").stdout
    return {k: v for k, v in (line.split(" ", 1) for line in out.splitlines() if " " in line)}


def rule_lines(path):
    return [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]


@pytest.fixture(scope="module")
def kernel_audit():
    if os.geteuid() != 0:
        pytest.skip("needs root: loading audit rules requires CAP_AUDIT_CONTROL")
    for tool in ("auditctl", "auditd", "ausearch"):
        assert shutil.which(tool), f"{tool} not found: install the auditd package (apt-get install auditd)"
    # The kernel's audit rules are one per machine: the same lock as every other test that
    # changes them (test_audit_netfilter_alert.py deletes rules and turns auditing off).
    lock = open("/tmp/airlock-audit-kernel.lock", "w")  # noqa: SIM115 (held for the module)
    fcntl.flock(lock, fcntl.LOCK_EX)
    probe = run("auditctl", "-s", check=False)
    if probe.returncode != 0:
        pytest.skip(f"the kernel refuses audit here: auditctl -s -> {probe.stderr.strip()}")
    status = audit_status()
    if status.get("enabled") == "2":
        pytest.skip("the kernel audit rules are immutable (-e 2) until reboot; no rule can be added")
    yield status
    lock.close()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auditd")
    state = tmp / "openhands-state"
    state.mkdir()
    (tmp / "airlock-config").mkdir()
    playbook = tmp / "render.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  connection: local\n"
        "  gather_facts: false\n"
        "  roles:\n"
        "    - role: auditd\n"
    )
    extra = {
        "auditd_install_packages": False,
        "auditd_apply": False,
        "auditd_rules_dir": str(tmp / "rules.d"),
        "auditd_conf_path": str(tmp / "conf" / "auditd.conf"),
        "auditd_log_file": str(tmp / "log" / "audit.log"),
        "auditd_openhands_state_paths": [str(state)],
        "auditd_airlock_config_paths": [str(tmp / "airlock-config")],
        "auditd_immutable": True,
        "ansible_python_interpreter": sys.executable,
    }
    (tmp / "conf").mkdir(mode=0o750)
    (tmp / "log").mkdir(mode=0o700)
    import json
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    res = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(playbook), "-e", json.dumps(extra)],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    return {"tmp": tmp, "state": state, "rules": tmp / "rules.d" / "30-airlock.rules",
            "conf_dir": tmp / "conf", "log": tmp / "log" / "audit.log", "rules_dir": tmp / "rules.d"}


def test_base_and_finalize_fragments(rendered):
    base = rule_lines(rendered["rules_dir"] / "10-airlock-base.rules")
    assert base[0] == "-D" and "-f 1" in base
    assert rule_lines(rendered["rules_dir"] / "99-airlock-finalize.rules") == ["-e 2"]


def test_every_rule_has_a_key(rendered):
    lines = rule_lines(rendered["rules"])
    assert len(lines) > 40
    for line in lines:
        assert re.search(r"(^|\s)-k \w+", line), line


def removal_command(line):
    args = shlex.split(line)
    if args[0] == "-w":
        args[0] = "-W"
    elif args[0] in ("-a", "-A"):
        args[0] = "-d"
    return args


def wait_for_key(log, key, pattern, timeout=15.0, interpret=True):
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        res = run("ausearch", "-if", str(log), "-k", key, *(["-i"] if interpret else []), check=False)
        out = res.stdout
        if res.returncode == 0 and re.search(pattern, out):
            return out
        time.sleep(0.5)
    raise AssertionError(f"no audit event with key {key} matching {pattern!r} in {log}:\n{out[-2000:]}")


def test_rules_load_into_kernel_and_log_events(kernel_audit, rendered):
    lines = rule_lines(rendered["rules"])
    before = run("auditctl", "-l").stdout
    daemon = None
    log = Path("/var/log/audit/audit.log")
    loaded = False
    try:
        res = run("auditctl", "-R", str(rendered["rules"]), check=False)
        loaded = True
        assert res.returncode == 0, f"auditctl -R refused the rendered rules:\n{res.stderr}"
        listed = run("auditctl", "-l").stdout.splitlines()
        for line in lines:
            if line.startswith("-w "):
                assert line in listed, f"watch not loaded: {line}"
            else:
                key = re.search(r"-k (\w+)", line).group(1)
                arch = re.search(r"arch=(\w+)", line).group(1)
                assert any(f"arch={arch}" in ln and f"key={key}" in ln for ln in listed), f"rule not loaded: {line}"

        if kernel_audit.get("pid", "0") == "0":
            # No audit daemon: run a private one with the rendered auditd.conf.
            log = rendered["log"]
            daemon = subprocess.Popen(["auditd", "-n", "-s", "enable", "-c", str(rendered["conf_dir"])],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            deadline = time.monotonic() + 15
            while audit_status().get("pid") != str(daemon.pid):
                assert daemon.poll() is None, f"auditd refused the rendered auditd.conf:\n{daemon.stdout.read()}"
                assert time.monotonic() < deadline, "the private auditd did not register with the kernel"
                time.sleep(0.2)
        elif kernel_audit.get("enabled") == "0":
            run("auditctl", "-e", "1")

        started = time.monotonic()
        # Each trigger runs in a new process: a process forked before audit was ever
        # enabled on this kernel has no audit context and would never be audited.
        # openhands_state: a write in the (temporary) OpenHands state directory.
        run("sh", "-c", f"echo '{{}}' > '{rendered['state']}/settings.json'")
        # airlock_config: a change to airlock's own configuration (the egress sets' config).
        run("sh", "-c", f"echo '{{}}' > '{rendered['tmp']}/airlock-config/egress.json'")
        # user_cmd: a command run by an interactive user (login uid 1000).
        def as_login_user():
            with open("/proc/self/loginuid", "w") as f:
                f.write("1000")
        subprocess.run(["/bin/true", "airlock-audit-probe"], preexec_fn=as_login_user, check=True)
        # docker_socket: a connection to the Docker socket, if this machine has one.
        docker_sock = Path("/run/docker.sock")
        if docker_sock.exists():
            run(sys.executable, "-c", "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])",
                str(docker_sock))

        wait_for_key(log, "openhands_state", re.escape(str(rendered["state"])))
        wait_for_key(log, "airlock_config", re.escape(str(rendered["tmp"] / "airlock-config")))
        out = wait_for_key(log, "user_cmd", r"airlock-audit-probe", interpret=False)
        assert re.search(r"type=SYSCALL .* auid=1000 .*key=\"user_cmd\"", out), out
        if docker_sock.exists():
            wait_for_key(log, "docker_socket", r"docker\.sock")
        # Every watch for attribute changes on a path that exists here, triggered by a chmod
        # to the mode the path already has (nothing changes), is found by its key; the files
        # the security model names are among them.
        triggered = {}
        for line in lines:
            args = shlex.split(line)
            if args[0] != "-w" or "a" not in args[args.index("-p") + 1]:
                continue
            path, key = args[1], args[args.index("-k") + 1]
            if os.path.exists(path) and not os.path.islink(path) and path not in triggered:
                run("chmod", format(os.stat(path).st_mode & 0o7777, "o"), path)
                triggered[path] = key
        unwatched = {p: k for p, k in MUST_WATCH.items() if os.path.exists(p) and triggered.get(p) != k}
        assert not unwatched, f"not watched with these keys: {unwatched}"
        for path, key in triggered.items():
            wait_for_key(log, key, rf"name={re.escape(path)}(\s|$)")
        print(f"\naudit events found by key {time.monotonic() - started:.2f} s after the trigger "
              f"({len(triggered)} watched paths triggered)")
    finally:
        if loaded:
            for line in lines:
                run("auditctl", *removal_command(line), check=False)
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=15)
        run("auditctl", "-e", kernel_audit.get("enabled", "0"), check=False)
    assert run("auditctl", "-l").stdout == before, "the test did not restore the kernel's rule list"
    assert audit_status().get("enabled") == kernel_audit.get("enabled")
