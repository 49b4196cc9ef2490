"""Bad input to the proxy tier roles is rejected before anything changes, naming the variable.

Each case runs ansible-playbook against localhost (connection local) with one bad value on
top of a valid baseline for nginx_proxy, fail2ban or host_baseline. The play must fail in
the role's validation step (argument specs or the validate.yml assertions, which come
before every task that changes something), report changed=0, name the variable, and never
print a password. The role filters are unit tested directly.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
SECRET = "never-shown-password-123"
CERT = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"

BASELINE = {
    "nginx_proxy": {"nginx_proxy_users": [{"name": "alice", "password": SECRET}],
                    "nginx_proxy_upstream_host": "10.0.1.10"},
    "fail2ban": {"fail2ban_ignoreip": ["192.0.2.10/32"]},
    "host_baseline": {"host_baseline_ufw_authorized_cidrs": ["192.0.2.0/24"],
                      "host_baseline_ntp_servers": ["192.0.2.123"]},
    "package_relay": {"package_relay_listen_address": "10.0.0.10"},
}

# A valid dns-01-route53 setting; each ACME case below breaks one value of it.
ACME = {"nginx_proxy_tls_mode": "acme", "nginx_proxy_server_name": "proxy.example.org",
        "nginx_proxy_acme_email": "ops@example.org", "nginx_proxy_acme_terms_agreed": True,
        "nginx_proxy_acme_challenge": "dns-01-route53", "nginx_proxy_acme_route53_zone": "example.org"}

CASES = [
    # The five the issue names.
    ("nginx_proxy", {"nginx_proxy_users": []}, "nginx_proxy_users is empty"),
    ("nginx_proxy", {"nginx_proxy_users": [{"name": "alice", "password": "short-pw"}]},
     "nginx_proxy_users: the password of alice is shorter than nginx_proxy_password_min_length"),
    ("nginx_proxy", {"nginx_proxy_tls_mode": "letsencrypt"}, "nginx_proxy_tls_mode"),
    ("nginx_proxy", {"nginx_proxy_tls_certificate": CERT}, "nginx_proxy_tls_private_key is empty"),
    ("nginx_proxy", {"nginx_proxy_upstream_host": "10.0.1.10:3000"}, "nginx_proxy_upstream_host '10.0.1.10:3000' is malformed"),
    # More of the same kind.
    ("nginx_proxy", {"nginx_proxy_upstream_host": "http://openhands"}, "nginx_proxy_upstream_host"),
    ("nginx_proxy", {"nginx_proxy_upstream_host": "10.0.1.300"}, "nginx_proxy_upstream_host"),
    ("nginx_proxy", {"nginx_proxy_users": [{"name": "al ice", "password": SECRET}]}, "nginx_proxy_users: invalid"),
    ("nginx_proxy", {"nginx_proxy_tls_mode": "provided"}, "nginx_proxy_tls_certificate is empty"),
    # The AWS inventory's setting: a self-signed certificate needs an explicit acknowledgement.
    ("nginx_proxy", {"nginx_proxy_selfsigned_acknowledged": False}, "nginx_proxy_selfsigned_acknowledged is false"),
    ("nginx_proxy", {"nginx_proxy_tls_mode": "acme", "nginx_proxy_server_name": "proxy.example.org",
                     "nginx_proxy_acme_email": "ops@example.org"}, "nginx_proxy_acme_terms_agreed"),
    # ACME dns-01 on Route 53 (and the ACME settings both challenges share).
    ("nginx_proxy", {**ACME, "nginx_proxy_acme_challenge": "dns-01"}, "nginx_proxy_acme_challenge"),
    ("nginx_proxy", {**ACME, "nginx_proxy_acme_route53_zone": ""}, "nginx_proxy_acme_route53_zone is empty"),
    ("nginx_proxy", {**ACME, "nginx_proxy_acme_route53_zone": "example org"}, "nginx_proxy_acme_route53_zone 'example org'"),
    ("nginx_proxy", {**ACME, "nginx_proxy_acme_email": ""}, "nginx_proxy_acme_email '' is not an e-mail address"),
    ("nginx_proxy", {**ACME, "nginx_proxy_acme_terms_agreed": False}, "nginx_proxy_acme_terms_agreed is false"),
    ("nginx_proxy", {**ACME, "nginx_proxy_acme_route53_endpoint_url": "127.0.0.1:5000"},
     "nginx_proxy_acme_route53_endpoint_url '127.0.0.1:5000'"),
    ("nginx_proxy", {**ACME, "nginx_proxy_server_name": "203.0.113.10"}, "nginx_proxy_server_name '203.0.113.10' is an address"),
    ("nginx_proxy", {**ACME, "nginx_proxy_acme_challenge": "http-01", "nginx_proxy_http_port": 8080},
     "nginx_proxy_http_port is 8080"),
    ("nginx_proxy", {"nginx_proxy_sandbox_port_range": {"start": 5000, "end": 4000}}, "nginx_proxy_sandbox_port_range"),
    ("nginx_proxy", {"nginx_proxy_internal_callers": ["10.0.1.10/24"]}, "nginx_proxy_internal_callers"),
    ("nginx_proxy", {"nginx_proxy_auth_backend": "ldap"}, "nginx_proxy_auth_backend"),
    ("nginx_proxy", {"nginx_proxy_upstream_host": "openhands.internal"}, "nginx_proxy_resolvers is empty"),
    # Sessions (login page, signed cookie).
    ("nginx_proxy", {"nginx_proxy_session_idle_timeout": 172800}, "nginx_proxy_session_idle_timeout: 172800 is longer than"),
    ("nginx_proxy", {"nginx_proxy_session_absolute_timeout": 10}, "nginx_proxy_session_absolute_timeout: 10"),
    ("nginx_proxy", {"nginx_proxy_session_cookie_name": "airlock session"}, "nginx_proxy_session_cookie_name: 'airlock session'"),
    ("nginx_proxy", {"nginx_proxy_session_key_generation": 0}, "nginx_proxy_session_key_generation: 0"),
    ("nginx_proxy", {"nginx_proxy_session_enabled": False, "nginx_proxy_basic_auth_api": True},
     "nginx_proxy_basic_auth_api is true while nginx_proxy_session_enabled is false"),
    ("fail2ban", {"fail2ban_ignoreip": ["192.0.2.10/24"]}, "fail2ban_ignoreip"),
    # A never-ban entry of prefix length 0 exempts every address of its IP version.
    ("fail2ban", {"fail2ban_ignoreip": ["0.0.0.0/0"]}, "fail2ban_ignoreip: 0.0.0.0/0 covers every IPv4 or IPv6 address"),
    ("fail2ban", {"fail2ban_ignoreip": ["192.0.2.10/32", "::/0"]}, "fail2ban_ignoreip: ::/0 covers every IPv4 or IPv6 address"),
    ("fail2ban", {"fail2ban_ignoreip": ["0.0.0.0/0.0.0.0"]}, "fail2ban_ignoreip: 0.0.0.0/0.0.0.0 covers every"),
    ("fail2ban", {"fail2ban_banaction": "ufw"}, "fail2ban_banaction"),
    ("fail2ban", {"fail2ban_sshd_port": 70000}, "fail2ban_sshd_port"),
    ("fail2ban", {"fail2ban_banaction": "iptables-multiport"}, "fail2ban_banaction and fail2ban_banaction_allports"),
    ("host_baseline", {"host_baseline_ufw_authorized_cidrs": []}, "host_baseline_ufw_authorized_cidrs is empty"),
    ("host_baseline", {"host_baseline_ufw_authorized_cidrs": ["not-a-cidr"]}, "host_baseline_ufw_authorized_cidrs: not a CIDR"),
    ("host_baseline", {"host_baseline_ufw_extra_rules": [{"source": "10.0.2.10/24", "port": 443}]}, "host_baseline_ufw_extra_rules"),
    ("host_baseline", {"host_baseline_ufw_extra_rules": [{"source": "10.0.2.10", "port": 0}]}, "host_baseline_ufw_extra_rules"),
    ("host_baseline", {"host_baseline_ssh_permit_root_login": "yes"}, "host_baseline_ssh_permit_root_login"),
    ("host_baseline", {"host_baseline_ntp_servers": []}, "host_baseline_ntp_servers is empty"),
    # The server's apt proxy (the package relay) and the relay itself.
    ("host_baseline", {"host_baseline_apt_proxy": "https://10.0.0.10:3142"}, "host_baseline_apt_proxy"),
    ("host_baseline", {"host_baseline_apt_proxy": "http://10.0.0.10:3142/debian"}, "host_baseline_apt_proxy"),
    ("host_baseline", {"host_baseline_apt_proxy": "http://10.0.0.10"}, "host_baseline_apt_proxy"),
    ("host_baseline", {"host_baseline_apt_proxy": 'http://10.0.0.10:3142";'}, "host_baseline_apt_proxy"),
    ("package_relay", {"package_relay_listen_address": "0.0.0.0"}, "package_relay_listen_address: 0.0.0.0 is not a private"),
    ("package_relay", {"package_relay_listen_address": "9.9.9.9"}, "package_relay_listen_address: 9.9.9.9 is a public address"),
    ("package_relay", {"package_relay_listen_address": "proxy.internal"}, "package_relay_listen_address: 'proxy.internal'"),
    ("package_relay", {"package_relay_port": 80}, "package_relay_port: 80"),
    ("package_relay", {"package_relay_allowed_hosts": ["*.ec2.archive.ubuntu.com"]}, "package_relay_allowed_hosts: '*.ec2"),
    ("package_relay", {"package_relay_allowed_hosts": ["http://deb.debian.org/debian"]}, "package_relay_allowed_hosts: 'http:"),
    ("package_relay", {"package_relay_allowed_hosts": ["deb.debian.org", "DEB.debian.org"]}, "is listed twice"),
    ("package_relay", {"package_relay_expire_days": 0}, "package_relay_expire_days"),
]


def run_role(tmp_path: Path, role: str, extra: dict, tasks_from: str = ""):
    """Run the role on this machine in check mode: should validation ever let bad input
    through, check mode still keeps the machine running the tests unchanged."""
    playbook = tmp_path / "play.yml"
    include = f"ansible.builtin.include_role: {{name: {role}{', tasks_from: ' + tasks_from if tasks_from else ''}}}"
    playbook.write_text(
        f"- hosts: localhost\n  gather_facts: {'true' if tasks_from else 'false'}\n"
        f"  gather_subset: ['!all']\n  tasks:\n    - name: Apply\n      {include}\n")
    variables = {**BASELINE[role], **extra, "ansible_python_interpreter": sys.executable}
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FACT_CACHING": "memory",
           "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"}
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "--check", "-i", "localhost,", "-c", "local", str(playbook), "-e", json.dumps(variables)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180, check=False)


def assert_rejected_before_change(result, message):
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert message in out, out
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\s", out), out
    assert SECRET not in out and "short-pw" not in out, "a password was printed"
    # The failing task is the argument validation or the role's validation/lockout step.
    assert "fatal:" in out, out
    task = out[out.rfind("TASK [", 0, out.index("fatal:")):].split("]", 1)[0]
    assert re.search(r"Validating arguments|: Check |: Refuse ", task), task


@pytest.mark.parametrize("role,extra,message", CASES,
                         ids=[f"{c[0]}-{next(iter(c[1]))}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_rejected_before_any_change(tmp_path, role, extra, message):
    assert_rejected_before_change(run_role(tmp_path, role, extra), message)


def test_valid_dns01_route53_settings_pass_the_checks(tmp_path):
    """Positive control of the ACME cases: the setting they each break one value of passes."""
    result = run_role(tmp_path, "nginx_proxy", ACME, tasks_from="assert")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", result.stdout), result.stdout


def test_operators_own_addresses_pass_the_fail2ban_checks(tmp_path):
    """Positive control of the prefix-length-0 cases: an IPv4 /32, an IPv6 /128 and a narrow
    network of each version pass."""
    result = run_role(tmp_path, "fail2ban", {"fail2ban_ignoreip": ["192.0.2.10/32", "198.51.100.0/28", "2001:db8::10/128",
                                                                   "2001:db8:1::/64"]}, tasks_from="assert")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", result.stdout), result.stdout


def test_apt_proxy_entry_point_refuses_bad_input(tmp_path):
    """`tasks_from: apt_proxy` (the server's first task on a fresh host) checks its input too."""
    result = run_role(tmp_path, "host_baseline", {"host_baseline_apt_proxy": "http://10.0.0.10:3142/debian"},
                      tasks_from="apt_proxy")
    assert_rejected_before_change(result, "host_baseline_apt_proxy")


# The lockout guard, alone (tasks_from: lockout, which only reads): as if this play had
# logged in over SSH from 198.51.100.7.
SESSION = {"__host_baseline_ssh_client": "198.51.100.7 50000 22"}


def test_lockout_guard_refuses_to_disable_the_root_login_in_use(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the root-login case needs the tests to run as root")
    result = run_role(tmp_path, "host_baseline", SESSION, tasks_from="lockout")
    assert_rejected_before_change(result, "host_baseline_ssh_permit_root_login is no")


def test_lockout_guard_refuses_ufw_cidrs_without_the_operator(tmp_path):
    result = run_role(tmp_path, "host_baseline", {**SESSION, "host_baseline_ssh_permit_root_login": "prohibit-password",
                                                  "host_baseline_ssh_allow_users": []}, tasks_from="lockout")
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    # The missing authorized_keys or the CIDR check stops it; both would lock the operator out.
    assert "Lockout guard (host_baseline_lockout_check)" in out, out
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\s", out), out



NGINX = load_module(ROOT / "roles/nginx_proxy/filter_plugins/nginx_proxy.py")
BASELINE_FILTERS = load_module(ROOT / "roles/host_baseline/filter_plugins/host_baseline.py")
FAIL2BAN_TESTS = load_module(ROOT / "roles/fail2ban/test_plugins/fail2ban.py")


@pytest.mark.parametrize("start,end", [(32768, 60999), (1024, 65535), (8000, 8012), (40000, 40000), (5, 123)])
def test_sandbox_port_regex_matches_exactly_the_range(start, end):
    rx = re.compile("^" + NGINX.port_range_regex(start, end) + "$")
    matched = [n for n in range(0, 70000) if rx.match(str(n))]
    assert matched == list(range(start, end + 1))
    assert not rx.match("0" + str(start)) and not rx.match(f"{start}/")


@pytest.mark.parametrize("value,kind", [
    ("10.0.1.10", "ipv4"), ("fd00::10", "ipv6"), ("openhands.internal", "hostname"), ("openhands", "hostname"),
    ("10.0.1.300", "invalid"), ("10.0.1.10:3000", "invalid"), ("http://openhands", "invalid"), ("", "invalid"),
    (" 10.0.1.10", "invalid"), ("-bad.example", "invalid"),
])
def test_upstream_address_kind(value, kind):
    assert NGINX.address_kind(value) == kind


def test_address_in():
    assert BASELINE_FILTERS.address_in("192.0.2.7", ["198.51.100.0/24", "192.0.2.0/24"])
    assert not BASELINE_FILTERS.address_in("203.0.113.1", ["192.0.2.0/24"])
    assert not BASELINE_FILTERS.address_in("garbage", ["0.0.0.0/0"])


@pytest.mark.parametrize("value,network,everything", [
    ("192.0.2.10/32", True, False), ("2001:db8::10", True, False), ("0.0.0.0/1", True, False),
    ("0.0.0.0/0", True, True), ("::/0", True, True), ("0.0.0.0/0.0.0.0", True, True),
    ("1.2.3.4/0", False, True), ("192.0.2.10/24", False, False), ("admin.example.org", False, False),
])
def test_fail2ban_ignoreip_tests(value, network, everything):
    """The fail2ban role's tests: what fail2ban_ignoreip may hold (a network) and what it may
    not (a whole address space, refused even where it is not a valid network)."""
    tests = FAIL2BAN_TESTS.TestModule().tests()
    assert tests["fail2ban_is_network"](value) is network
    assert tests["fail2ban_covers_every_address"](value) is everything
