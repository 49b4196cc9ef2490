"""The lab reached over SSH exactly as AWS hosts are (inventories/lab-ssh).

The lab's default inventory drives the containers through the Docker API, so the way
Ansible reaches EC2 hosts is never run there: SSH as the image's login user with a key and
sudo to the proxy, then ProxyJump through it to the server's private address, through the
hardened sshd, UFW, fail2ban and the server's input chain. A lockout by the hardening would
show up only on a real deployment. Here the lab gets what an Ubuntu EC2 image's first boot
gives it (lab_up.yml: sshd, the `ubuntu` user with the lab's key, passwordless sudo), and
site.yml converges it over the AWS inventory's own connection files, twice: the first
converge, then the idempotent rerun through the hardened hosts. Then only the login user
with its key gets in; another user with the same key, root, or a password do not.

The steps share one lab and run in order; a failed step skips the rest (conftest.py).
"""
from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAB = {"AIRLOCK_LAB_NAME": "sshlab", "AIRLOCK_LAB_NET": "10.218",
       "AIRLOCK_LAB_HTTPS_PORT": "20443", "AIRLOCK_LAB_HTTP_PORT": "20080"}
PREFIX = "airlock-" + LAB["AIRLOCK_LAB_NAME"]
NET = LAB["AIRLOCK_LAB_NET"]
PROXY, SERVER = f"{NET}.10.10", f"{NET}.11.20"  # lab_addresses.proxy_public, openhands_private
PROXY_PRIVATE, CONTROLLER = f"{NET}.11.10", f"{NET}.10.1"  # proxy_private, public_gateway
SSH_DIR = ROOT / f".{LAB['AIRLOCK_LAB_NAME']}" / "ssh"
INVENTORY = ["-i", "inventories/lab-ssh"]
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def playbook(*args: str, timeout: int = 2400) -> subprocess.CompletedProcess:
    """One ansible-playbook run with control sockets of its own: ansible.cfg keeps SSH
    masters for 300 s, so without this a rerun right after a converge would go through the
    first run's open connections and never log in through what that run hardened."""
    with tempfile.TemporaryDirectory(prefix="airlock-cp-", dir="/tmp") as sockets:
        env = {**os.environ, **LAB, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
               "ANSIBLE_SSH_CONTROL_PATH_DIR": sockets}
        cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), *INVENTORY, *args]
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        # Close the masters this run left behind before their directory goes.
        for sock in Path(sockets).iterdir():
            subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True, timeout=30)
    (ROOT / "reports").mkdir(exist_ok=True)
    name = "e2e-ssh-" + "-".join(re.sub(r"[^a-z0-9]+", "_", a.lower()).strip("_") for a in args)[:80]
    (ROOT / "reports" / f"{name}.log").write_text(res.stdout + res.stderr)
    return res


def ok(res: subprocess.CompletedProcess) -> None:
    tail = "\n".join((res.stdout + res.stderr).splitlines()[-60:])
    assert res.returncode == 0, f"ansible-playbook failed:\n{tail}"


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


def ssh(target: str, *command: str, user: str = "ubuntu", jump: bool = False, options: tuple = (),
        env: dict | None = None) -> subprocess.CompletedProcess:
    """ssh as an operator would, with the lab's ssh config (its key and known hosts)."""
    args = ["ssh", "-F", str(SSH_DIR / "config"), "-o", "ConnectTimeout=15", *options]
    if jump:
        args += ["-J", f"ubuntu@{PROXY}"]
    return subprocess.run([*args, f"{user}@{target}", *command], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def accepted(container: str, user: str, source: str) -> int:
    log = docker("exec", container, "journalctl", "-u", "ssh", "--no-pager", "-o", "cat")
    return len(re.findall(rf"Accepted publickey for {user} from {re.escape(source)} ", log))


def test_lab_comes_up_with_an_ec2_images_login():
    ok(playbook("playbooks/lab_down.yml"))
    assert lab_objects() == []
    ok(playbook("playbooks/lab_up.yml"))
    assert stat.S_IMODE((SSH_DIR / "id_ed25519").stat().st_mode) == 0o600
    res = ssh(PROXY, "sudo", "-n", "id", "-u", options=("-o", "BatchMode=yes"))
    assert res.returncode == 0 and res.stdout.strip() == "0", res.stderr


def test_site_converges_over_ssh_and_proxyjump():
    before_proxy = accepted(f"{PREFIX}-proxy", "ubuntu", CONTROLLER)
    before_server = accepted(f"{PREFIX}-openhands", "ubuntu", PROXY_PRIVATE)
    ok(playbook("site.yml"))
    # It really went over SSH: the proxy's sshd let the controller in, the server's let the
    # proxy's private address in (the ProxyJump hop), as the login user.
    assert accepted(f"{PREFIX}-proxy", "ubuntu", CONTROLLER) > before_proxy
    assert accepted(f"{PREFIX}-openhands", "ubuntu", PROXY_PRIVATE) > before_server


def test_rerun_through_the_hardened_hosts_changes_nothing():
    """The idempotent rerun logs in through what the first converge hardened (sshd's
    AllowUsers and keys only, UFW and fail2ban on the proxy, the server's input chain): no
    lockout, ProxyJump still working, and nothing to change."""
    before_proxy = accepted(f"{PREFIX}-proxy", "ubuntu", CONTROLLER)
    before = accepted(f"{PREFIX}-openhands", "ubuntu", PROXY_PRIVATE)
    res = playbook("site.yml")
    ok(res)
    changed = {h: r["changed"] for h, r in recap(res).items() if r["changed"]}
    assert recap(res) and not changed, f"second run over SSH changed something: {changed}"
    assert {"airlock-lab-proxy", "airlock-lab-openhands"} <= set(recap(res))
    # New logins, not the first run's connections: each run has control sockets of its own.
    assert accepted(f"{PREFIX}-proxy", "ubuntu", CONTROLLER) > before_proxy
    assert accepted(f"{PREFIX}-openhands", "ubuntu", PROXY_PRIVATE) > before
    config = docker("exec", f"{PREFIX}-proxy", "sshd", "-T")
    assert "allowusers ubuntu" in config and "passwordauthentication no" in config, config


def test_only_the_login_user_with_its_key_gets_in():
    """After hardening: the login user with the lab's key gets in, on the proxy and through
    it on the server (the positive controls). The same key authorized for another user, or
    for root, is refused on both; so is the login user's own correct password."""
    batch = ("-o", "BatchMode=yes")
    for container in (f"{PREFIX}-proxy", f"{PREFIX}-openhands"):
        key = (SSH_DIR / "id_ed25519.pub").read_text().strip()
        docker("exec", container, "sh", "-c",
               "id mallory >/dev/null 2>&1 || useradd -m -s /bin/bash mallory; "
               "for h in /home/mallory /root; do mkdir -p $h/.ssh; "
               f"echo '{key}' > $h/.ssh/authorized_keys; done; "
               "chown -R mallory: /home/mallory/.ssh; chmod 700 /home/mallory/.ssh /root/.ssh; "
               "chmod 600 /home/mallory/.ssh/authorized_keys /root/.ssh/authorized_keys")
    for target, jump in ((PROXY, False), (SERVER, True)):
        control = ssh(target, "id", "-un", jump=jump, options=batch)
        assert control.returncode == 0 and control.stdout.strip() == "ubuntu", f"positive control on {target}: {control.stderr}"
        for user in ("mallory", "root"):
            res = ssh(target, "true", user=user, jump=jump, options=batch)
            assert res.returncode == 255 and "Permission denied" in res.stderr, f"{user} got into {target}: {res.stderr}"
    # A password: the login user's real one (set here, and checked against the shadow file),
    # offered by ssh's askpass, without a key.
    password = "lab-ssh-test-password-7"
    docker("exec", f"{PREFIX}-proxy", "sh", "-c", f"echo 'ubuntu:{password}' | chpasswd")
    right = docker("exec", f"{PREFIX}-proxy", "python3", "-c",
                   "import crypt, spwd, sys; h = spwd.getspnam('ubuntu').sp_pwdp; print(crypt.crypt(sys.argv[1], h) == h)",
                   password).strip()
    assert right == "True", "the password offered below is not the user's"
    askpass = SSH_DIR / "askpass"
    askpass.write_text(f"#!/bin/sh\necho '{password}'\n")
    askpass.chmod(0o700)
    res = ssh(PROXY, "true", options=("-o", "BatchMode=no", "-o", "PubkeyAuthentication=no",
                                      "-o", "PreferredAuthentications=password,keyboard-interactive",
                                      "-o", "NumberOfPasswordPrompts=1"),
              env={"SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"})
    assert res.returncode == 255 and "Permission denied (publickey)" in res.stderr, res.stderr


def test_lab_down_leaves_nothing():
    ok(playbook("playbooks/lab_down.yml"))
    assert lab_objects() == []
    assert not (ROOT / f".{LAB['AIRLOCK_LAB_NAME']}").exists()
