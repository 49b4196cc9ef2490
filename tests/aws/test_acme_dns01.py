"""ACME dns-01 on Route 53 (nginx_proxy_acme_challenge: dns-01-route53), end to end on loopback.

The whole nginx_proxy role runs in a throwaway Debian 12 container with systemd, on the
host's network namespace so it reaches the two loopback servers this module starts: moto
(Route 53) and pebble (a real ACME server, the Debian package). Pebble resolves the
challenge through a DNS server that answers from moto's records
(tests/helpers/acme_pebble.py), so the TXT record the role's hook writes is what the CA
validates. nginx listens on two free high ports of that namespace and the test reads the
certificate it serves with a TLS handshake to 127.0.0.1 (SNI: the server name). Nothing
here leaves the machine; the container's apt reaches the Debian archive for nginx,
certbot and python3-boto3.

Order matters (one container, one moto zone set): the refused zone first (nothing
installed), then the issuance, the rerun that changes nothing, and the timer's renewal,
which the running nginx serves after the deploy hook's reload.
"""
from __future__ import annotations

import json
import re
import shlex
import socket
import ssl
import subprocess
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.acme_pebble import Pebble, Route53Dns
from helpers.moto_server import BIN, base_env, free_port

ROOT = Path(__file__).resolve().parents[2]

IMAGE = "airlock/debian:12"
NAME = "proxy.airlock.test"
ZONE = "airlock.test"
OTHER_ZONE = "elsewhere.test"
TLS_CERT = "/etc/nginx/tls/airlock.crt"
TLS_KEY = "/etc/nginx/tls/airlock.key"
CHALLENGE = f"_acme-challenge.{NAME}."
RECAP = re.compile(r"^\S+\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


@dataclass
class Run:
    rc: int
    output: str

    @property
    def changed(self) -> int:
        found = RECAP.findall(self.output)
        assert found, f"no play recap in output:\n{self.output[-3000:]}"
        return int(found[-1][1])


def docker(*args: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


class Lab:
    def __init__(self, container: str, moto, pebble: Pebble, dns: Route53Dns, workdir: Path):
        self.container, self.moto, self.pebble, self.dns, self.workdir = container, moto, pebble, dns, workdir
        self.r53 = moto.client("route53")
        # The container shares the host's network namespace: free high ports, no IPv6
        # listener, and an upstream port nothing listens on (a TLS handshake never reaches it).
        self.https_port, self.http_port, self.upstream_port = free_port(), free_port(), free_port()

    def sh(self, command: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
        return docker("exec", self.container, "sh", "-c", command, check=check, timeout=timeout)

    def exists(self, path: str) -> bool:
        return self.sh(f"test -e {shlex.quote(path)}", check=False).returncode == 0

    def converge(self, zone: str) -> Run:
        variables = {
            "nginx_proxy_tls_mode": "acme",
            "nginx_proxy_acme_challenge": "dns-01-route53",
            "nginx_proxy_server_name": NAME,
            "nginx_proxy_acme_email": "ops@airlock.test",
            "nginx_proxy_acme_terms_agreed": True,
            "nginx_proxy_acme_directory": self.pebble.directory,
            "nginx_proxy_acme_route53_zone": zone,
            "nginx_proxy_acme_route53_endpoint_url": self.moto.url,
            "nginx_proxy_users": [{"name": "alice", "password": "unused-in-this-test"}],
            "nginx_proxy_https_port": self.https_port,
            "nginx_proxy_http_port": self.http_port,
            "nginx_proxy_listen_ipv6": False,
            "nginx_proxy_upstream_port": self.upstream_port,
        }
        path = self.workdir / "vars.json"
        path.write_text(json.dumps(variables))
        env = {**base_env(self.moto, "test"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles")}
        proc = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", str(self.workdir / "hosts.yml"), str(self.workdir / "play.yml"),
             "-e", f"@{path}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        return Run(proc.returncode, proc.stdout + proc.stderr)

    def module_check(self, module: str, args: dict) -> Run:
        """One module in check mode on the container, as a task of the role would run it."""
        env = {**base_env(self.moto, "test")}
        proc = subprocess.run(
            [str(BIN / "ansible"), "all", "-i", str(self.workdir / "hosts.yml"), "--check", "-m", module,
             "-a", json.dumps(args)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        return Run(proc.returncode, proc.stdout + proc.stderr)

    def txt_records(self) -> list[dict]:
        found = []
        for zone in self.r53.list_hosted_zones()["HostedZones"]:
            found += [s for s in self.r53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
                      if s["Type"] == "TXT"]
        return found

    def certificate(self) -> dict:
        """Subject, issuer, serial and SAN of the certificate nginx reads, and whether it
        chains to pebble's issuing root."""
        pem = self.sh(f"cat {TLS_CERT}").stdout
        (self.workdir / "served.pem").write_text(pem)
        (self.workdir / "pebble-roots.pem").write_text(self.pebble.issuing_roots())
        info = subprocess.run(["openssl", "x509", "-noout", "-issuer", "-serial", "-ext", "subjectAltName",
                               "-in", str(self.workdir / "served.pem")], capture_output=True, text=True, check=True)
        verify = subprocess.run(["openssl", "verify", "-CAfile", str(self.workdir / "pebble-roots.pem"),
                                 "-purpose", "sslserver", "-verify_hostname", NAME, str(self.workdir / "served.pem")],
                                capture_output=True, text=True, check=False)
        fields = {line.split("=", 1)[0]: line.split("=", 1)[1].strip() for line in info.stdout.splitlines() if "=" in line}
        return {"issuer": fields.get("issuer", ""), "serial": fields.get("serial", ""), "text": info.stdout,
                "verified": verify.returncode == 0, "verify_output": verify.stdout + verify.stderr}

    def served_serial(self) -> str:
        """Serial of the certificate nginx presents in a TLS handshake to 127.0.0.1 with SNI
        = the server name (openssl's notation, as certificate() reports the file's)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the serial is compared, not trusted
        with socket.create_connection(("127.0.0.1", self.https_port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=NAME) as tls:
            der = tls.getpeercert(binary_form=True)
        info = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                              capture_output=True, check=True)
        return info.stdout.decode().strip().split("=", 1)[1]

    def served_serial_once_it_is(self, expected: str, timeout: float = 15.0) -> str:
        """The served serial, read until it is EXPECTED or TIMEOUT passed (a reload lets the
        old workers finish; new connections reach the new ones within moments)."""
        deadline = time.monotonic() + timeout
        served = self.served_serial()
        while served != expected and time.monotonic() < deadline:
            time.sleep(0.5)
            served = self.served_serial()
        return served

    def nginx_main_pid(self) -> str:
        pid = self.sh("systemctl show -p MainPID --value nginx").stdout.strip()
        assert pid not in ("", "0"), "nginx is not running"
        return pid

    def challenge_lookups(self) -> list[list[str]]:
        """TXT values this lab's DNS server answered to the CA for the challenge name."""
        return [values for name, rdtype, values in self.dns.queries if name == CHALLENGE and rdtype == "TXT"]


@pytest.fixture(scope="module")
def lab(moto, tmp_path_factory):
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode != 0:
        pytest.fail(f"base image {IMAGE} missing: tools/testbed/build-images.sh builds it")
    workdir = tmp_path_factory.mktemp("acme")
    r53 = moto.client("route53")
    for zone in (ZONE, OTHER_ZONE):
        r53.create_hosted_zone(Name=zone, CallerReference=f"airlock-acme-{zone}-{time.time()}")
    dns = Route53Dns(r53).start()
    pebble = Pebble(workdir, dns.address).start()
    container = f"airlock-acme-dns01-{workdir.name.replace('_', '-')}"
    # -t: systemd writes its start-up errors to a terminal only; the failure below shows them.
    docker("run", "-d", "-t", "--name", container, "--network", "host",
           "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
           "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
           "-v", "airlock-apt-cache-acme-dns01:/var/cache/apt/archives",
           "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp", "--stop-signal", "SIGRTMIN+3",
           IMAGE, "/lib/systemd/systemd")
    try:
        lab = Lab(container, moto, pebble, dns, workdir)
        booted = lab.sh("for i in $(seq 180); do s=$(systemctl is-system-running 2>/dev/null); "
                        "case $s in running|degraded) exit 0;; esac; sleep 1; done; exit 1", check=False)
        if booted.returncode != 0:
            pytest.fail(f"systemd did not start in {container}: {docker('logs', container, check=False).stdout[-1500:]}")
        # The container trusts the ACME API's certificate, as a host trusts a real CA's.
        docker("cp", str(pebble.api_ca), f"{container}:/usr/local/share/ca-certificates/airlock-test-acme-api.crt")
        lab.sh("update-ca-certificates >/dev/null")
        # Debian's nginx package starts nginx with its default site on port 80 when it is
        # installed; this container shares the host's ports, so package scripts start
        # nothing here (policy-rc.d, as in Docker's Debian images). The role starts nginx
        # with its own configuration.
        lab.sh("printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d")
        # Credentials the moto server accepts, where boto3 on an EC2 host finds the instance profile.
        lab.sh("mkdir -p /root/.aws && printf '[default]\\naws_access_key_id = testing\\n"
               "aws_secret_access_key = testing\\n' > /root/.aws/credentials && chmod 600 /root/.aws/credentials")
        (workdir / "hosts.yml").write_text(textwrap.dedent(f"""\
            all:
              hosts:
                {container}:
                  ansible_connection: community.docker.docker
                  ansible_python_interpreter: /usr/bin/python3
            """))
        (workdir / "play.yml").write_text("- hosts: all\n  roles: [nginx_proxy]\n")
        yield lab
    finally:
        docker("rm", "-f", container, check=False)
        pebble.stop()
        dns.stop()


def test_a_zone_without_the_name_is_refused_and_nothing_is_installed(lab):
    run = lab.converge(OTHER_ZONE)
    assert run.rc != 0, run.output
    assert "nginx_proxy_acme_route53_zone: the hosted zone elsewhere.test." in run.output, run.output[-3000:]
    assert f"does not contain {NAME}." in run.output
    assert not lab.exists("/etc/letsencrypt/live") and not lab.exists(TLS_CERT)
    # The whole role ran: the zone is refused before nginx is installed.
    assert not lab.exists("/usr/sbin/nginx") and not lab.exists("/etc/nginx/nginx.conf")
    assert lab.txt_records() == []
    assert lab.challenge_lookups() == [], "the CA was asked to validate"


def test_the_certificate_is_issued_by_the_acme_server_through_route53(lab):
    run = lab.converge(ZONE)
    assert run.rc == 0, run.output[-4000:]
    assert run.changed > 0
    cert = lab.certificate()
    assert "Pebble Intermediate CA" in cert["issuer"], cert["text"]
    assert f"DNS:{NAME}" in cert["text"]
    assert cert["verified"], cert["verify_output"]
    # The CA found the token through DNS, in the record the hook wrote into moto's zone...
    lookups = lab.challenge_lookups()
    assert any(values for values in lookups), lookups
    # ...and the record is gone again.
    assert lab.txt_records() == []
    assert lab.sh(f"stat -c '%a %U' {TLS_KEY}").stdout.split() == ["600", "root"]
    assert lab.sh(f"stat -c '%a' {TLS_CERT}").stdout.strip() == "644"
    # nginx, started by the role, serves that certificate on the role's HTTPS port.
    assert lab.served_serial() == cert["serial"], cert["text"]


def test_a_rerun_changes_nothing_while_the_certificate_is_fresh(lab):
    before = lab.certificate()["serial"]
    pid = lab.nginx_main_pid()
    lookups = len(lab.challenge_lookups())
    run = lab.converge(ZONE)
    assert run.rc == 0, run.output[-4000:]
    assert run.changed == 0, run.output[-4000:]
    assert lab.certificate()["serial"] == before
    assert lab.served_serial() == before and lab.nginx_main_pid() == pid
    assert len(lab.challenge_lookups()) == lookups
    # tls.yml's key task (run by every full converge) keeps certbot's key: it would
    # otherwise make a new key that no longer matches the certificate.
    key = lab.module_check("community.crypto.openssl_privatekey", {
        "path": TLS_KEY, "type": "ECC", "curve": "secp256r1", "owner": "root", "group": "root", "mode": "0600"})
    assert key.rc == 0 and '"changed": false' in key.output, key.output


def test_the_renewal_timer_renews_through_route53(lab):
    assert lab.sh("systemctl is-enabled certbot.timer").stdout.strip() == "enabled"
    assert lab.sh("systemctl is-active certbot.timer").stdout.strip() == "active"
    assert lab.sh(f"grep -x 'renew_before_expiry = 30 days' /etc/letsencrypt/renewal/{NAME}.conf", check=False).returncode == 0
    command = lab.sh("systemctl show -p ExecStart --value certbot.service").stdout
    argv = command.split("argv[]=", 1)[1].split(" ;", 1)[0].split()
    assert argv[0] == "/usr/bin/certbot" and "renew" in argv, command
    before = lab.certificate()["serial"]
    pid = lab.nginx_main_pid()
    # Positive control of the probe below: before the renewal nginx serves the first certificate.
    assert lab.served_serial() == before
    # The unit itself, as the timer starts it: the certificate is fresh, nothing renews.
    lab.sh("systemctl start certbot.service", timeout=300)
    assert lab.certificate()["serial"] == before
    assert lab.served_serial() == before
    # The same command with a forced renewal: a new order, validated through Route 53.
    lookups = len(lab.challenge_lookups())
    lab.sh(shlex.join([*argv, "--force-renewal"]), timeout=300)
    after = lab.certificate()
    assert after["serial"] != before
    assert "Pebble Intermediate CA" in after["issuer"] and after["verified"], after
    assert len(lab.challenge_lookups()) > lookups
    assert lab.txt_records() == []
    # The running nginx serves the renewed certificate: its deploy hook reloaded it (the
    # master process is the same, no restart) and nobody touched nginx by hand.
    assert lab.served_serial_once_it_is(after["serial"]) == after["serial"], (before, after["serial"])
    assert lab.nginx_main_pid() == pid
