"""Behaviour of the proxy tier, seen from clients on the scenario's network.

nginx_proxy-client is an ordinary client, nginx_proxy-admin is in fail2ban's ignoreip,
nginx_proxy-upstream is the test upstream (not OpenHands), and nginx_proxy-pam uses Linux
accounts through PAM. Every refusal is checked beside a positive control: the same probe
where it must succeed. fail2ban's bans: test_proxy_tier_bans.py.

Both proxies run sessions (the role's default): the password is sent once, to the login
endpoint, and a signed cookie opens everything else. nginx_proxy-proxy keeps the default of
refusing Basic credentials on the app; nginx_proxy-pam turns nginx_proxy_basic_auth_api on.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from proxytier import (ADMIN, COOKIE, PAM, PROXY, add_extra_address, address, forge, login, other, parse_response,
                       request, session_key, ssh, ssh_outcome, status, wait_for)

testinfra_hosts = ["nginx_proxy-client"]


@pytest.fixture(scope="module")
def proxy():
    return address(PROXY)


@pytest.fixture(scope="module")
def admin():
    return other(ADMIN)


# pam_unix's check in a container of a loaded test machine was measured at about 10 s.
PAM_TIMEOUT = 30


def headers_of(client, url, cookie=None, extra=""):
    """(status, session cookie set, headers) of a GET from `client`."""
    cmd = "curl -sk -m 10 -o /dev/null -D - " + extra + " "
    if cookie:
        cmd += "-b " + shlex.quote(cookie) + " "
    return parse_response(client.check_output(cmd + shlex.quote(url)))


@pytest.fixture(scope="module")
def alice(admin, proxy):
    code, cookie, _ = login(admin, proxy, "alice:alice-test-password-1")
    assert code == "200" and cookie, code
    return cookie


def test_login_required_wrong_refused_right_accepted(admin, proxy):
    # Without a session: 401, and no Basic challenge (a browser would show its dialog).
    code, _, headers = headers_of(admin, f"https://{proxy}/")
    assert code == "401" and "www-authenticate" not in headers, headers
    # A wrong password at the login: 401, no cookie, no challenge either (the page's fetch).
    code, cookie, headers = login(admin, proxy, "alice:not-her-password")
    assert code == "401" and not cookie and "www-authenticate" not in headers, headers
    # The right one: a session cookie with its flags, which opens the app.
    for user in ("alice:alice-test-password-1", "bob:bob-test-password-22"):
        code, cookie, headers = login(admin, proxy, user)
        assert code == "200" and cookie, (code, headers)
        flags = [f.strip().lower() for f in headers["set-cookie"].split(";")[1:]]
        assert {"secure", "httponly", "samesite=strict", "path=/"} <= set(flags), flags
        assert status(admin, f"https://{proxy}/", cookie=cookie) == "200"


def test_a_user_not_in_the_list_is_removed(admin, proxy):
    # prepare.yml seeded mallory's valid entry; the role keeps exactly the listed users.
    code, cookie, _ = login(admin, proxy, "mallory:mallory-test-password-5")
    assert code == "401" and not cookie
    assert login(admin, proxy, "alice:alice-test-password-1")[0] == "200"  # control


def test_real_client_address_reaches_the_upstream_and_the_password_does_not(admin, proxy, alice):
    out = admin.check_output("curl -sk -m 10 -b %s https://%s/whoami", f"theme=dark; {alice}; lang=en", proxy)
    seen = json.loads(out)
    admin_ip = address(ADMIN)
    assert seen["headers"]["x-real-ip"] == admin_ip
    assert seen["headers"]["x-forwarded-for"] == admin_ip
    assert "authorization" not in seen["headers"]
    # The session cookie stays at the proxy; the application's own cookies pass.
    assert COOKIE not in seen["headers"]["cookie"] and "theme=dark" in seen["headers"]["cookie"], seen["headers"]


def test_plain_http_redirects_to_https(admin, proxy):
    out = admin.check_output("curl -s -m 10 -o /dev/null -w '%%{http_code} %%{redirect_url}' http://%s/x", proxy)
    code, location = out.split(" ", 1)
    assert code == "301" and location.startswith("https://") and location.endswith("/x")


def test_websocket_needs_the_login(admin, proxy, alice):
    ok = admin.run("ws-client %s / --cookie %s", proxy, alice)
    assert ok.rc == 0 and "101" in ok.stdout and "hello airlock" in ok.stdout
    refused = admin.run("ws-client %s /", proxy)
    assert refused.rc != 0 and "401" in refused.stdout
    # Basic credentials are not a way in on this proxy (nginx_proxy_basic_auth_api false).
    basic = admin.run("ws-client %s / --user alice --password alice-test-password-1", proxy)
    assert basic.rc != 0 and "401" in basic.stdout


def test_sandbox_routes_only_inside_the_port_range(admin, proxy, alice):
    out = admin.check_output("curl -sk -m 10 -b %s https://%s/runtime/40000/api/x", alice, proxy)
    seen = json.loads(out)
    assert seen["port"] == 40000 and seen["path"] == "/api/x"
    assert status(admin, f"https://{proxy}/runtime/8080/", cookie=alice) == "404"
    assert status(admin, f"https://{proxy}/runtime/40000/") == "401"
    # The sandbox's websocket (the conversation's events) on the same session.
    ws = admin.run("ws-client %s /runtime/40000/sockets/events/x --cookie %s", proxy, alice)
    assert ws.rc == 0 and '"port": 40000' in ws.stdout, ws.stdout
    assert admin.run("ws-client %s /runtime/40000/sockets/events/x", proxy).rc != 0


def test_a_page_load_without_a_session_gets_the_login_page(admin, proxy):
    # A browser's page load goes to the login page (with where it was going); the page and
    # its script come from the proxy itself (CSP 'self', no inline script).
    code, _, headers = headers_of(admin, f"https://{proxy}/conversations/1?x=y", extra="-H 'Sec-Fetch-Mode: navigate'")
    assert code == "302" and headers["location"] == "/airlock/login?next=%2Fconversations%2F1%3Fx%3Dy", headers
    page = admin.check_output("curl -sk -m 10 https://%s/airlock/login", proxy)
    assert '<form id="login"' in page and '<script src="/airlock/login.js"></script>' in page
    assert not re.search(r"<script>|https?://", page), "the login page loads nothing from elsewhere"
    script = admin.check_output("curl -sk -m 10 https://%s/airlock/login.js", proxy)
    assert "/airlock/session" in script and "Authorization" in script
    # Control: the same page load with a session reaches the app.
    code, cookie, _ = login(admin, proxy, "bob:bob-test-password-22")
    assert headers_of(admin, f"https://{proxy}/conversations/1", cookie=cookie,
                      extra="-H 'Sec-Fetch-Mode: navigate'")[0] == "200"


def test_logout_ends_the_session(admin, proxy):
    code, cookie, _ = login(admin, proxy, "bob:bob-test-password-22")
    assert code == "200" and status(admin, f"https://{proxy}/", cookie=cookie) == "200"
    code, cleared, headers = parse_response(admin.check_output(
        "curl -sk -m 10 -o /dev/null -D - -X POST -b %s https://%s/airlock/logout", cookie, proxy))
    assert code == "204" and "max-age=0" in headers["set-cookie"].lower(), headers
    # The same cookie, replayed (as a thief would): refused; the server revoked it.
    assert status(admin, f"https://{proxy}/", cookie=cookie) == "401"
    assert admin.run("ws-client %s / --cookie %s", proxy, cookie).rc != 0
    # Control: a new login works.
    assert status(admin, f"https://{proxy}/", cookie=login(admin, proxy, "bob:bob-test-password-22")[1]) == "200"


def test_idle_and_absolute_timeouts_end_a_session(admin, proxy):
    key = session_key()
    url = f"https://{proxy}/"
    # Control: a cookie signed with the host's key, issued and seen just now, is accepted.
    assert status(admin, url, cookie=forge(key, "alice", 0, 0)) == "200"
    # Idle: last seen more than nginx_proxy_session_idle_timeout (8 h) ago; just under it passes.
    assert status(admin, url, cookie=forge(key, "alice", 9 * 3600, 8 * 3600 - 60)) == "200"
    assert status(admin, url, cookie=forge(key, "alice", 9 * 3600, 8 * 3600 + 60)) == "401"
    # Absolute: issued more than nginx_proxy_session_absolute_timeout (24 h) ago, however active.
    assert status(admin, url, cookie=forge(key, "alice", 24 * 3600 - 60, 10)) == "200"
    assert status(admin, url, cookie=forge(key, "alice", 24 * 3600 + 60, 10)) == "401"
    # Activity renews the idle clock: a session last seen two minutes ago gets a new cookie.
    code, renewed, _ = headers_of(admin, url, cookie=forge(key, "alice", 3600, 120))
    assert code == "200" and renewed, "no renewed cookie"
    assert status(admin, url, cookie=renewed) == "200"


def test_a_tampered_or_foreign_cookie_is_refused(admin, proxy, alice):
    url = f"https://{proxy}/"
    assert status(admin, url, cookie=alice) == "200"  # control: the cookie as issued
    name, value = alice.split("=", 1)
    version, user, sid, issued, seen, signature = value.split("|")
    assert user == "alice"
    # Another user, or a later login time, with the signature kept.
    assert status(admin, url, cookie=f"{name}={version}|bob|{sid}|{issued}|{seen}|{signature}") == "401"
    assert status(admin, url, cookie=f"{name}={version}|alice|{sid}|{int(issued) + 3600}|{seen}|{signature}") == "401"
    # One character of the signature changed.
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert status(admin, url, cookie=f"{name}={version}|{user}|{sid}|{issued}|{seen}|{flipped}") == "401"
    # Signed with another key.
    assert status(admin, url, cookie=forge(b"0" * 64, "alice", 0, 0)) == "401"


def converge(playbook: str, extra: dict | None = None) -> subprocess.CompletedProcess:
    """Run one of the scenario's playbooks with its inventory (and extra variables)."""
    scenario = Path(__file__).resolve().parents[1]
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(scenario.parents[1] / "roles"), ANSIBLE_FORCE_COLOR="0")
    res = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", os.environ["MOLECULE_INVENTORY_FILE"],
                          str(scenario / playbook), "-e", json.dumps(extra or {})],
                         capture_output=True, text=True, env=env, timeout=900, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    return res


def converge_users(users):
    """Run the nginx_proxy role on the htpasswd proxy with `users` as nginx_proxy_users (the
    rest of the scenario's inventory as it is): what a converge after editing the list does."""
    converge("users.yml", {"nginx_proxy_users": users})


USERS = [{"name": "alice", "password": "alice-test-password-1"}, {"name": "bob", "password": "bob-test-password-22"},
         {"name": "erin", "password": "erin-test-password-333"}]  # molecule.yml's list


def test_a_removed_users_session_ends_at_the_next_request(admin, proxy, alice):
    url = f"https://{proxy}/"
    code, erin, _ = login(admin, proxy, "erin:erin-test-password-333")
    assert code == "200" and status(admin, url, cookie=erin) == "200"
    try:
        converge_users([u for u in USERS if u["name"] != "erin"])
        assert status(admin, url, cookie=erin) == "401", "a removed user's session went on"
        assert admin.run("ws-client %s / --cookie %s", proxy, erin).rc != 0
        assert status(admin, url, cookie=alice) == "200", "control: another user's session ended too"
    finally:
        converge_users(USERS)
    # Back in the list, the user logs in again (the scenario as it was).
    assert status(admin, url, cookie=login(admin, proxy, "erin:erin-test-password-333")[1]) == "200"


def test_basic_auth_for_the_api_only_where_switched_on(admin, proxy):
    pam = address(PAM)
    # nginx_proxy-proxy: nginx_proxy_basic_auth_api false (the default): the right password
    # as a Basic header opens nothing but the login endpoint.
    assert status(admin, f"https://{proxy}/", user="alice:alice-test-password-1") == "401"
    assert status(admin, f"https://{proxy}/runtime/40000/", user="alice:alice-test-password-1") == "401"
    assert login(admin, proxy, "alice:alice-test-password-1")[0] == "200"  # control: the password is right
    # nginx_proxy-pam: switched on: the same kind of request passes, a wrong password does not
    # (and gets the Basic challenge an API client expects).
    assert status(admin, f"https://{pam}/", user="carol:carol-linux-password-3", timeout=PAM_TIMEOUT) == "200"
    assert status(admin, f"https://{pam}/runtime/40000/", user="carol:carol-linux-password-3", timeout=PAM_TIMEOUT) == "200"
    code, _, headers = headers_of(admin, f"https://{pam}/", extra="-m 30 -u carol:wrong-password-000")
    assert code == "401" and headers.get("www-authenticate", "").startswith("Basic"), headers
    # Without credentials it still asks for the session, with no Basic dialog.
    code, _, headers = headers_of(admin, f"https://{pam}/")
    assert code == "401" and "www-authenticate" not in headers, headers


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


def test_security_headers(admin, proxy, alice):
    headers = admin.check_output("curl -sk -m 10 -D - -o /dev/null -b %s https://%s/", alice, proxy).lower()
    assert "strict-transport-security: max-age=" in headers
    assert "content-security-policy:" in headers and "posthog" not in headers
    assert "x-content-type-options: nosniff" in headers
    assert "server: nginx\r" in headers or "server: nginx\n" in headers  # no version (server_tokens off)


def test_pam_backend_logs_in_with_a_linux_account(admin):
    pam = address(PAM)
    code, cookie, _ = login(admin, pam, "carol:carol-linux-password-3", timeout=PAM_TIMEOUT)
    assert code == "200" and status(admin, f"https://{pam}/", cookie=cookie) == "200"
    assert login(admin, pam, "carol:wrong-password-000", timeout=PAM_TIMEOUT)[0] == "401"
    assert login(admin, pam, "dave:dave-linux-password-4", timeout=PAM_TIMEOUT)[0] == "401"  # not in the group


def test_a_locked_linux_accounts_session_ends_at_the_next_request(admin):
    pam, pam_host = address(PAM), other(PAM)
    url = f"https://{pam}/"
    code, carol, _ = login(admin, pam, "carol:carol-linux-password-3", timeout=PAM_TIMEOUT)
    code_f, frank, _ = login(admin, pam, "frank:frank-linux-password-6", timeout=PAM_TIMEOUT)
    assert code == "200" and code_f == "200"
    assert status(admin, url, cookie=carol) == "200" and status(admin, url, cookie=frank) == "200"
    pam_host.check_output("usermod -L carol")
    try:
        assert wait_for(lambda: status(admin, url, cookie=carol) == "401", 15), "a locked account's session went on"
        assert status(admin, url, cookie=frank) == "200", "control: another account's session ended too"
        assert login(admin, pam, "carol:carol-linux-password-3", timeout=PAM_TIMEOUT)[0] == "401"
    finally:
        pam_host.check_output("usermod -U carol")
    # Unlocked, the account logs in again.
    assert wait_for(lambda: login(admin, pam, "carol:carol-linux-password-3", timeout=PAM_TIMEOUT)[0] == "200", 60)


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


def test_a_ufw_default_changed_by_hand_is_restored_by_the_next_converge():
    """host_baseline runs `ufw default` only for a policy /etc/default/ufw does not already
    hold (each call reloads every rule, seconds on every rerun): a policy changed by hand is
    still found and put back, live. The control: the hand change took (UFW and the kernel's
    INPUT chain accept), so the converge had something to restore."""
    proxy = other(PROXY)
    proxy.check_output("ufw default allow incoming")
    try:
        assert "allow (incoming)" in proxy.check_output("ufw status verbose")
        assert proxy.check_output("iptables -S INPUT").splitlines()[0] == "-P INPUT ACCEPT"
        res = converge("baseline.yml")
        assert "changed: [nginx_proxy-proxy] => (item=incoming deny)" in res.stdout, res.stdout[-3000:]
        assert "deny (incoming)" in proxy.check_output("ufw status verbose")
        assert proxy.check_output("iptables -S INPUT").splitlines()[0] == "-P INPUT DROP"
    finally:
        proxy.run("ufw default deny incoming")


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
