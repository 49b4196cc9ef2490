"""Behaviour of the proxy tier, seen from clients on the scenario's network.

nginx_proxy-client is an ordinary client (it gets banned at the end), nginx_proxy-admin is
in fail2ban's ignoreip, nginx_proxy-upstream is the test upstream (not OpenHands), and
nginx_proxy-pam uses Linux accounts through PAM. Tests run in file order: the ban comes last.
"""
from __future__ import annotations

import json
import os
import shlex
import time

import pytest
import testinfra

testinfra_hosts = ["nginx_proxy-client"]

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")


def other(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def address(name):
    facts = other(name).ansible("setup", "gather_subset=!all,network")["ansible_facts"]
    return facts["ansible_default_ipv4"]["address"]


@pytest.fixture(scope="module")
def proxy():
    return address("nginx_proxy-proxy")


@pytest.fixture(scope="module")
def admin():
    return other("nginx_proxy-admin")


def status(client, url, user=None, timeout=10):
    """HTTP status of a GET as the client sees it ("000": no answer at all)."""
    cmd = f"curl -sk -m {int(timeout)} -o /dev/null -w '%{{http_code}}' "
    if user:
        cmd += "-u " + shlex.quote(user) + " "
    return client.run(cmd + shlex.quote(url)).stdout.strip()


def test_login_required_wrong_refused_right_accepted(admin, proxy):
    assert status(admin, f"https://{proxy}/") == "401"
    assert status(admin, f"https://{proxy}/", user="alice:not-her-password") == "401"
    assert status(admin, f"https://{proxy}/", user="alice:alice-test-password-1") == "200"
    assert status(admin, f"https://{proxy}/", user="bob:bob-test-password-22") == "200"


def test_a_user_not_in_the_list_is_removed(admin, proxy):
    # prepare.yml seeded mallory's valid entry; the role keeps exactly the listed users.
    assert status(admin, f"https://{proxy}/", user="mallory:mallory-test-password-5") == "401"


def test_real_client_address_reaches_the_upstream_and_the_password_does_not(admin, proxy):
    out = admin.check_output("curl -sk -m 10 -u alice:alice-test-password-1 https://%s/whoami", proxy)
    seen = json.loads(out)
    admin_ip = address("nginx_proxy-admin")
    assert seen["headers"]["x-real-ip"] == admin_ip
    assert seen["headers"]["x-forwarded-for"] == admin_ip
    assert "authorization" not in seen["headers"]


def test_plain_http_redirects_to_https(admin, proxy):
    out = admin.check_output("curl -s -m 10 -o /dev/null -w '%%{http_code} %%{redirect_url}' http://%s/x", proxy)
    code, location = out.split(" ", 1)
    assert code == "301" and location.startswith("https://") and location.endswith("/x")


def test_websocket_needs_the_login(admin, proxy):
    ok = admin.run("ws-client %s / --user alice --password alice-test-password-1", proxy)
    assert ok.rc == 0 and "101" in ok.stdout and "hello airlock" in ok.stdout
    refused = admin.run("ws-client %s /", proxy)
    assert refused.rc != 0 and "401" in refused.stdout


def test_sandbox_routes_only_inside_the_port_range(admin, proxy):
    out = admin.check_output("curl -sk -m 10 -u alice:alice-test-password-1 https://%s/runtime/40000/api/x", proxy)
    seen = json.loads(out)
    assert seen["port"] == 40000 and seen["path"] == "/api/x"
    assert status(admin, f"https://{proxy}/runtime/8080/", user="alice:alice-test-password-1") == "404"
    assert status(admin, f"https://{proxy}/runtime/40000/") == "401"


@pytest.mark.parametrize("flag,accepted", [("-tls1", False), ("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)])
def test_tls_versions(admin, proxy, flag, accepted):
    # SECLEVEL=0 so that the client really offers the old versions: the refusal is the proxy's.
    res = admin.run("openssl s_client -connect %s:443 %s -cipher 'DEFAULT:@SECLEVEL=0' </dev/null", proxy, flag)
    assert (res.rc == 0 and "Cipher is (NONE)" not in res.stdout) is accepted, res.stdout[-500:] + res.stderr[-500:]


def test_security_headers(admin, proxy):
    headers = admin.check_output("curl -sk -m 10 -D - -o /dev/null -u alice:alice-test-password-1 https://%s/", proxy).lower()
    assert "strict-transport-security: max-age=" in headers
    assert "content-security-policy:" in headers and "posthog" not in headers
    assert "x-content-type-options: nosniff" in headers
    assert "server: nginx\r" in headers or "server: nginx\n" in headers  # no version (server_tokens off)


def test_pam_backend_logs_in_with_a_linux_account(admin):
    pam = address("nginx_proxy-pam")
    assert status(admin, f"https://{pam}/", user="carol:carol-linux-password-3") == "200"
    assert status(admin, f"https://{pam}/", user="carol:wrong-password-000") == "401"
    assert status(admin, f"https://{pam}/", user="dave:dave-linux-password-4") == "401"  # not in the group


def test_openhands_host_reaches_sandbox_routes_without_login_but_not_the_app(proxy):
    # The OpenHands server calls its sandboxes through the public URL (internal callers).
    upstream = other("nginx_proxy-upstream")
    seen = json.loads(upstream.check_output("curl -sk -m 10 https://%s/runtime/40000/internal", proxy))
    assert seen["port"] == 40000 and seen["path"] == "/internal"
    assert status(upstream, f"https://{proxy}/") == "401"


def test_ssh_is_keys_only_without_root():
    proxy_host = other("nginx_proxy-proxy")
    config = proxy_host.check_output("sshd -T")
    assert "passwordauthentication no" in config and "permitrootlogin no" in config
    # The running sshd offers public keys only: a password login is refused outright.
    res = proxy_host.run("ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                         "-o PreferredAuthentications=password,keyboard-interactive root@127.0.0.1 true")
    assert res.rc != 0 and "Permission denied (publickey)" in res.stderr, res.stderr


def test_ufw_is_active_with_default_deny():
    out = other("nginx_proxy-proxy").check_output("ufw status verbose")
    assert "Status: active" in out and "deny (incoming)" in out
    for port in ("22/tcp", "80/tcp", "443/tcp"):
        assert port in out


def test_ignoreip_client_is_never_banned(admin, proxy):
    for _ in range(8):  # refused (401), or slowed by the login-failure rate limit (429): never dropped
        assert status(admin, f"https://{proxy}/", user="alice:wrong-password-000") in ("401", "429")
    time.sleep(4)
    assert status(admin, f"https://{proxy}/", user="alice:alice-test-password-1") == "200"


def test_six_wrong_logins_ban_the_client_then_the_ban_ends(host, proxy):
    for _ in range(6):
        status(host, f"https://{proxy}/", user="alice:wrong-password-000")
    banned_at = None
    for _ in range(20):  # the ban must land within seconds
        if status(host, f"https://{proxy}/", user="alice:alice-test-password-1", timeout=3) == "000":
            banned_at = time.monotonic()
            break
        time.sleep(1)
    assert banned_at is not None, "six wrong logins did not get the client banned"
    jail = other("nginx_proxy-proxy").check_output("fail2ban-client status nginx-http-auth")
    assert address("nginx_proxy-client") in jail
    for _ in range(45):  # bantime is 20 s in this scenario
        if status(host, f"https://{proxy}/", user="alice:alice-test-password-1", timeout=3) == "200":
            return
        time.sleep(2)
    pytest.fail("the ban did not end after the ban time")
