"""fail2ban's jails ban (sshd, nginx-limit-req, recidive, nginx-http-auth), each seen from a
client address of its own on nginx_proxy-client (tests/proxytier.py), so that no ban or
repeat-offender count spills into another test. Every ban is checked beside positive
controls: the proxy answers the same probe from the admin client (fail2ban_ignoreip) at the
same moment, and the banned address on a port its jail does not cover.

This file runs after test_proxy_tier.py (pytest takes the files in name order): its last
test spends the admin's failed-login allowance (nginx_proxy_login_fail_rate), and the login
tests there expect 401, not 429, from the admin. It waits for the allowance to come back, so
that a verify run right after this one (a mutation check on a live scenario) starts clean.
"""
from __future__ import annotations

import time

from proxytier import (ADMIN, PROXY, add_extra_address, address, ban_logged, banned, fail2ban_log_size, login, login_url,
                       other, request, ssh, ssh_outcome, status, statuses, wait_for)

testinfra_hosts = ["nginx_proxy-client"]

FAILURES = 6  # fail2ban_maxretry is 5 in this scenario
RIGHT, WRONG = "alice:alice-test-password-1", "alice:wrong-password-000"  # test fixtures (molecule.yml)
LOGIN_FAIL_BURST = 5  # nginx_proxy_login_fail_burst (the role's default)
LOGIN_FAIL_INTERVAL = 6  # seconds per failed login in nginx_proxy_login_fail_rate (10r/m, the role's default)


def test_failed_ssh_logins_get_the_address_banned_by_sshd(host):
    source, proxy, admin = add_extra_address("sshd"), address(PROXY), other(ADMIN)
    # An unknown user without a key: one failure in sshd's log per attempt.
    outcomes = [ssh_outcome(ssh(host, proxy, source=source)) for _ in range(FAILURES)]
    assert outcomes[0] == "denied", outcomes  # sshd answered this address before the ban
    assert wait_for(lambda: ssh_outcome(ssh(host, proxy, source=source)) == "refused", 30), \
        f"{FAILURES} failed SSH logins did not get {source} banned: {outcomes}"
    assert source in banned("sshd")
    # Controls: sshd answers the admin's same attempt; the banned address still reaches HTTPS
    # (the sshd jail bans SSH only).
    assert ssh_outcome(ssh(admin, proxy)) == "denied"
    assert request(host, f"https://{proxy}/", source=source) == ("401", 0)


def test_failed_login_burst_gets_the_address_banned_by_limit_req(host):
    source, proxy, admin = add_extra_address("limit-req"), address(PROXY), other(ADMIN)
    url = login_url(proxy)
    # Logins without credentials: nginx logs no authentication failure for them (so
    # nginx-http-auth sees nothing); only the failed-login zone counts them. The first
    # 1 + burst pass (401), the next are refused (429) and logged, and five such lines ban.
    codes = statuses(host, url, LOGIN_FAIL_BURST + 1 + FAILURES, source=source, method="POST")
    assert codes[:LOGIN_FAIL_BURST + 1] == ["401"] * (LOGIN_FAIL_BURST + 1), codes
    assert codes[LOGIN_FAIL_BURST + 1] == "429", codes
    assert wait_for(lambda: request(host, url, source=source, timeout=5, method="POST") == ("000", 7), 20), \
        f"the failed-login burst did not get {source} banned: {codes}"
    assert source in banned("nginx-limit-req") and source not in banned("nginx-http-auth")
    # Controls: the proxy answers the admin's same request; sshd still answers the banned
    # address (the jail bans 80 and 443 only).
    assert status(admin, url, method="POST") in ("401", "429")
    assert ssh_outcome(ssh(host, proxy, source=source)) == "denied"


def test_requests_without_a_session_are_not_failed_logins(host):
    """A browser tab whose session ended keeps polling the app: those requests (no password
    checked) are answered 401 without counting as failed logins, so the user is not banned
    for them; the control is the same number of logins without credentials, which ban."""
    source, proxy = add_extra_address("no-session"), address(PROXY)
    codes = statuses(host, f"https://{proxy}/api/poll", LOGIN_FAIL_BURST + 1 + FAILURES, source=source)
    assert codes == ["401"] * (LOGIN_FAIL_BURST + 1 + FAILURES), codes
    assert request(host, f"https://{proxy}/", source=source, timeout=5) == ("401", 0)
    assert source not in banned("nginx-limit-req") + banned("nginx-http-auth")
    assert login(host, proxy, RIGHT, source=source)[0] == "200"


def test_an_address_banned_twice_is_held_by_recidive_on_every_port(host):
    source, proxy, admin = add_extra_address("recidive"), address(PROXY), other(ADMIN)
    url, login_at = f"https://{proxy}/", login_url(proxy)
    since = fail2ban_log_size()
    # First ban: nginx-http-auth, for wrong passwords (six stay within the failed-login burst).
    statuses(host, login_at, FAILURES, user=WRONG, source=source, method="POST")
    assert wait_for(lambda: ban_logged("nginx-http-auth", source, since), 20), "no nginx-http-auth ban"
    # Second ban: sshd (its port is not one nginx-http-auth bans).
    for _ in range(FAILURES):
        if ssh_outcome(ssh(host, proxy, source=source)) != "denied":
            break
    assert wait_for(lambda: ban_logged("sshd", source, since), 20), "no sshd ban"
    # Two bans within fail2ban_recidive_findtime (fail2ban_recidive_maxretry is 2 here):
    # recidive bans the address on every port, for fail2ban_recidive_bantime (600 s here).
    # Once both jails' own bans have ended (fail2ban_bantime, 20 s here), it is still shut out...
    assert wait_for(lambda: source not in banned("nginx-http-auth") + banned("sshd"), 60), "the jails' bans did not end"
    assert request(host, url, source=source, timeout=5) == ("000", 7), "a repeat offender got back in"
    assert ssh_outcome(ssh(host, proxy, source=source)) == "refused"
    assert source in banned("recidive")
    # ...while the proxy answers the admin's same probes.
    assert status(admin, url) in ("401", "429")
    assert ssh_outcome(ssh(admin, proxy)) == "denied"


def test_six_wrong_logins_get_the_address_banned_by_http_auth_then_the_ban_ends(host):
    source, proxy, admin = add_extra_address("http-auth"), address(PROXY), other(ADMIN)
    url = login_url(proxy)
    # This address logs in before (the page's login: the password once, a session cookie back).
    assert login(host, proxy, RIGHT, source=source)[0] == "200"
    statuses(host, url, FAILURES, user=WRONG, source=source, method="POST")
    assert wait_for(lambda: request(host, url, user=RIGHT, source=source, timeout=3, method="POST") == ("000", 7), 20), \
        f"{FAILURES} wrong logins did not get {source} banned"
    assert source in banned("nginx-http-auth")
    # Controls: the admin's same login goes through; sshd still answers the banned address.
    assert login(admin, proxy, RIGHT)[0] == "200"
    assert ssh_outcome(ssh(host, proxy, source=source)) == "denied"
    # The ban ends after fail2ban_bantime (20 s here): the address logs in again.
    assert wait_for(lambda: login(host, proxy, RIGHT, source=source, timeout=3)[0] == "200", 90, 2), \
        "the ban did not end after the ban time"


def test_ignoreip_client_is_never_banned(host):
    proxy, admin = address(PROXY), other(ADMIN)
    url = login_url(proxy)
    for _ in range(8):  # refused (401), or slowed by the login-failure rate limit (429): never dropped
        assert status(admin, url, user=WRONG, method="POST") in ("401", "429")
    time.sleep(4)
    assert login(admin, proxy, RIGHT)[0] == "200"
    # Give the admin's failed-login allowance back (the whole burst drains in this time).
    time.sleep((LOGIN_FAIL_BURST + 1) * LOGIN_FAIL_INTERVAL)
