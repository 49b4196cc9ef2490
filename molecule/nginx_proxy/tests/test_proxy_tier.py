"""Behaviour of the proxy tier, seen from clients on the scenario's network.

nginx_proxy-client is an ordinary client, nginx_proxy-admin is in fail2ban's ignoreip,
nginx_proxy-upstream is the test upstream (not OpenHands), and nginx_proxy-pam uses Linux
accounts through PAM. Every refusal is checked beside a positive control: the same probe
where it must succeed. fail2ban's bans: test_proxy_tier_bans.py.
"""
from __future__ import annotations

import json
import re
import shlex

import pytest
from proxytier import ADMIN, PAM, PROXY, add_extra_address, address, other, request, ssh, ssh_outcome, status, wait_for

testinfra_hosts = ["nginx_proxy-client"]


@pytest.fixture(scope="module")
def proxy():
    return address(PROXY)


@pytest.fixture(scope="module")
def admin():
    return other(ADMIN)


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
    admin_ip = address(ADMIN)
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


TLS_CONTROL_PORT = 4433


def tls_handshake(client, target, flag):
    """openssl s_client from `client` to `target` (host:port) forcing one protocol version,
    at SECLEVEL=0 so that the client really offers TLS 1.0/1.1 (OpenSSL 3 refuses them by
    default): (the negotiated protocol, or None when the handshake failed; the output)."""
    res = client.run("openssl s_client -brief -connect %s %s -cipher 'DEFAULT:@SECLEVEL=0' </dev/null", target, flag)
    out = res.stdout + res.stderr
    found = re.search(r"^Protocol version: (\S+)$", out, re.M)
    return (found.group(1) if res.rc == 0 and "CONNECTION ESTABLISHED" in out and found else None), out


@pytest.fixture(scope="module")
def permissive_tls_server():
    """host:port of a TLS server that still speaks TLS 1.0 and 1.1 (openssl s_server at
    SECLEVEL=0), the positive control for the proxy's refusal: on the PAM proxy, a host of
    the same tier (same OpenSSL, no UFW), on a port of its own, with a throwaway certificate."""
    pam = other(PAM)
    workdir = pam.check_output("mktemp -d /var/tmp/airlock-tls-control.XXXXXX")
    pam.check_output("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=airlock-tls-control "
                     "-keyout %s/key.pem -out %s/cert.pem 2>&1", workdir, workdir)
    pam.check_output("systemd-run --unit airlock-test-tls-control --collect openssl s_server -accept %s "
                     "-cert %s/cert.pem -key %s/key.pem -cipher 'DEFAULT:@SECLEVEL=0' -www",
                     str(TLS_CONTROL_PORT), workdir, workdir)
    assert wait_for(lambda: pam.run("ss -Hltn sport = :%s", str(TLS_CONTROL_PORT)).stdout.strip(), 15), \
        "the permissive TLS server did not start"
    yield f"{address(PAM)}:{TLS_CONTROL_PORT}"
    pam.run("systemctl stop airlock-test-tls-control")
    pam.run("rm -rf %s", workdir)


@pytest.mark.parametrize("flag,version", [("-tls1", "TLSv1"), ("-tls1_1", "TLSv1.1")])
def test_tls_1_0_and_1_1_refused_beside_a_server_that_speaks_them(admin, proxy, permissive_tls_server, flag, version):
    # Control: the same client, same command, completes this version where the server allows it.
    protocol, out = tls_handshake(admin, permissive_tls_server, flag)
    assert protocol == version, "control: the client did not complete " + version + ": " + out[-800:]
    # The proxy refuses the version itself (alert 70, protocol_version: ssl_protocols). Without
    # ssl_protocols the handshake still fails, for want of a shared cipher (alert 40, measured),
    # and would succeed as soon as the cipher list took a CBC suite: that is not the control.
    protocol, out = tls_handshake(admin, f"{proxy}:443", flag)
    assert protocol is None and "alert protocol version" in out, out[-800:]


@pytest.mark.parametrize("flag,version", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_tls_1_2_and_1_3_accepted(admin, proxy, flag, version):
    protocol, out = tls_handshake(admin, f"{proxy}:443", flag)
    assert protocol == version, out[-800:]


def test_security_headers(admin, proxy):
    headers = admin.check_output("curl -sk -m 10 -D - -o /dev/null -u alice:alice-test-password-1 https://%s/", proxy).lower()
    assert "strict-transport-security: max-age=" in headers
    assert "content-security-policy:" in headers and "posthog" not in headers
    assert "x-content-type-options: nosniff" in headers
    assert "server: nginx\r" in headers or "server: nginx\n" in headers  # no version (server_tokens off)


def test_pam_backend_logs_in_with_a_linux_account(admin):
    pam = address(PAM)
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
    proxy_host = other(PROXY)
    config = proxy_host.check_output("sshd -T")
    assert "passwordauthentication no" in config and "permitrootlogin no" in config
    # The running sshd offers public keys only: a password login is refused outright.
    res = proxy_host.run("ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                         "-o PreferredAuthentications=password,keyboard-interactive root@127.0.0.1 true")
    assert res.rc != 0 and "Permission denied (publickey)" in res.stderr, res.stderr


@pytest.fixture()
def test_key(admin):
    """Private key file, on the admin client, of a key pair made for this test (no
    passphrase; removed afterwards) whose public half the proxy authorizes for root and
    for the admin account ops."""
    keydir = admin.check_output("mktemp -d /var/tmp/airlock-ssh-test.XXXXXX")
    admin.check_output("ssh-keygen -q -t ed25519 -N '' -C airlock-ssh-test -f %s/key", keydir)
    public = admin.check_output("cat %s/key.pub", keydir).strip()
    proxy_host = other(PROXY)
    for user in ("root", "ops"):
        proxy_host.ansible("ansible.posix.authorized_key", f"user={user} key={shlex.quote(public)} state=present",
                           check=False)
    yield f"{keydir}/key"
    for user in ("root", "ops"):
        proxy_host.ansible("ansible.posix.authorized_key", f"user={user} key={shlex.quote(public)} state=absent",
                           check=False)
    admin.run("rm -rf %s", keydir)


def test_root_refused_even_with_a_key_that_logs_the_admin_in(admin, proxy, test_key):
    proxy_host = other(PROXY)
    since = proxy_host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    # Control: the same key and command log the admin account in.
    res = ssh(admin, proxy, user="ops", key=test_key, command="id -un")
    assert ssh_outcome(res) == "ok" and res.stdout.strip() == "ops", res.stderr
    res = ssh(admin, proxy, user="root", key=test_key, command="id -un")
    assert ssh_outcome(res) == "denied", res.stdout + res.stderr
    # sshd checked root's key and refused root for being root (PermitRootLogin no): it logs
    # this line only once the key's signature has been verified.
    refused = f"ROOT LOGIN REFUSED FROM {address(ADMIN)}"

    def logged():
        return refused in proxy_host.check_output("journalctl -u ssh --since %s --no-pager -o cat", since)

    assert wait_for(logged, 10), "sshd did not log the refusal of root's valid key"


def test_ufw_is_active_with_default_deny():
    out = other(PROXY).check_output("ufw status verbose")
    assert "Status: active" in out and "deny (incoming)" in out
    for port in ("22/tcp", "80/tcp", "443/tcp"):
        assert port in out


def test_ufw_drops_a_client_outside_the_authorized_cidrs(host, admin, proxy):
    outsider = add_extra_address("outsider")
    pam = address(PAM)
    # Controls: the proxy answers an authorized client, and the outsider's address reaches the
    # same services on the PAM proxy (same roles, UFW off): its packets go out and come back.
    assert request(host, f"https://{proxy}/") == ("401", 0)
    assert ssh_outcome(ssh(admin, proxy)) == "denied"
    assert request(host, f"https://{pam}/", source=outsider) == ("401", 0)
    assert ssh_outcome(ssh(host, pam, source=outsider)) == "denied"
    # The proxy drops the outsider: no answer at all (a timeout, not a refused connection).
    assert request(host, f"https://{proxy}/", source=outsider, timeout=5) == ("000", 28)
    assert ssh_outcome(ssh(host, proxy, source=outsider)) == "timeout"
    # The service was up all along.
    assert request(host, f"https://{proxy}/") == ("401", 0)


def test_the_package_relay_is_composed_and_closed_to_other_hosts(host, proxy):
    """The proxy tier runs the server's package relay (package_relay, apt-cacher-ng on the
    proxy's address): from the proxy itself it answers, refusing a host off its allow list
    (403), the positive control. UFW admits only the server's address to its port (there is
    no server here), so a client of the authorized CIDRs, which reaches the proxy's HTTPS
    port on the same address, cannot connect to the relay's."""
    relay = other(PROXY)
    probe = "curl -s -m 5 -o /dev/null -w '%%{http_code}' -x http://%s:3142 http://decoy.airlock.invalid/dists/x/InRelease"
    assert relay.check_output(probe, proxy) == "403", "positive control: the relay does not answer on the proxy"
    assert status(host, f"https://{proxy}/") == "401", "positive control: the client does not reach the proxy"
    got = host.run(probe, proxy)
    assert got.rc != 0 and got.stdout.strip() == "000", f"a client other than the server reached the relay: {got.stdout}"
