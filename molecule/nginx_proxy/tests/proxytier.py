"""What the proxy tier's tests share: the scenario's hosts and addresses, the extra client
addresses the tests add, the probes a client runs (HTTPS with curl, SSH with ssh) and what
fail2ban says it banned.

UFW on nginx_proxy-proxy authorizes the lower half of the scenario's network (molecule.yml),
where Docker puts every container. The tests add addresses of that network to
nginx_proxy-client, each acting as a client of its own so that no test's failures, bans or
repeat-offender count spill into another's: one per jail in the upper part of the lower half
(authorized), and the outsider in the upper half (not authorized).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import os
import random
import re
import shlex
import time

import testinfra

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
PROXY, PAM, CLIENT, ADMIN = "nginx_proxy-proxy", "nginx_proxy-pam", "nginx_proxy-client", "nginx_proxy-admin"
SSH_OPTIONS = ("-o BatchMode=yes -o ConnectTimeout=5 -o StrictHostKeyChecking=no "
               "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
_RANDOM = random.Random()
_TAKEN: set[str] = set()


def other(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


@functools.lru_cache(maxsize=None)
def ipv4(name) -> dict:
    """The container's default IPv4 facts (address, network, prefix, interface)."""
    return other(name).ansible("setup", "gather_subset=!all,network")["ansible_facts"]["ansible_default_ipv4"]


def address(name) -> str:
    return ipv4(name)["address"]


@functools.lru_cache(maxsize=None)
def extra_address(purpose) -> str:
    """The address the tests use as the client for `purpose` ("outsider": not authorized; any
    other name, a jail's: authorized), drawn near the top of the lower (authorized) or upper
    half of the scenario's network, far from the addresses Docker gives out from the bottom.
    Drawn afresh for each test session: a second verify on the same proxy would otherwise
    meet fail2ban's memory of the first (recidive would hold those addresses)."""
    facts = ipv4(PROXY)
    lower, upper = ipaddress.ip_network(f"{facts['network']}/{facts['prefix']}").subnets(prefixlen_diff=1)
    half = upper if purpose == "outsider" else lower
    while True:
        addr = str(half[-_RANDOM.randrange(2, min(half.num_addresses // 2, 250))])
        if addr not in _TAKEN:
            _TAKEN.add(addr)
            return addr


def add_extra_address(purpose) -> str:
    """Put the address for `purpose` on nginx_proxy-client (a /32 beside its own address,
    so it is used only when a probe binds to it) and return it."""
    addr = extra_address(purpose)
    other(CLIENT).check_output("ip addr replace %s/32 dev %s", addr, ipv4(CLIENT)["interface"])
    return addr


def _curl(url, user=None, source=None, timeout=10, cookie=None, method=None) -> str:
    cmd = f"curl -sk -m {int(timeout)} -o /dev/null -w '%{{http_code}}' "
    if source:
        cmd += f"--interface {shlex.quote(source)} "
    if user:
        cmd += "-u " + shlex.quote(user) + " "
    if cookie:
        cmd += "-b " + shlex.quote(cookie) + " "
    if method:
        cmd += "-X " + shlex.quote(method) + " "
    return cmd + shlex.quote(url)


def request(client, url, user=None, source=None, timeout=10, cookie=None, method=None) -> tuple[str, int]:
    """(HTTP status, curl's exit code) of a GET (or `method`) from `client`, from its address
    `source` when given, with Basic credentials `user` ("name:password") or the Cookie header
    `cookie` when given. "000" is no answer: exit code 7 a refused connection (a fail2ban
    reject), 28 a timeout (a dropped packet)."""
    res = client.run(_curl(url, user, source, timeout, cookie, method))
    return res.stdout.strip(), res.rc


def status(client, url, user=None, source=None, timeout=10, cookie=None, method=None) -> str:
    """HTTP status of a GET as the client sees it ("000": no answer at all)."""
    return request(client, url, user=user, source=source, timeout=timeout, cookie=cookie, method=method)[0]


def statuses(client, url, count, user=None, source=None, timeout=5, method=None) -> list[str]:
    """HTTP statuses of `count` GETs (or `method`) sent one right after another from `client`
    (one command, so that rate limits see a burst)."""
    res = client.run(f"for i in $(seq {int(count)}); do {_curl(url, user, source, timeout, method=method)}; echo; done")
    return res.stdout.split()


# ----------------------------------------------------------------------------- sessions
COOKIE = "__Host-airlock_session"  # nginx_proxy_session_cookie_name (the role's default)
LOGIN_PATH = "/airlock/session"  # where the login page sends the password, once
KEY_FILE = "/etc/nginx/airlock-session-key.conf"


def login_url(proxy) -> str:
    return f"https://{proxy}{LOGIN_PATH}"


def login(client, proxy, user, source=None, timeout=10) -> tuple[str, str, dict]:
    """A login as the login page sends it (POST, the password once as a Basic header): the
    HTTP status, the session cookie ("NAME=VALUE" for a Cookie header, "" when none was set)
    and the response headers (lower-case names; set-cookie as sent)."""
    cmd = f"curl -sk -m {int(timeout)} -o /dev/null -D - -X POST -u {shlex.quote(user)} "
    if source:
        cmd += f"--interface {shlex.quote(source)} "
    res = client.run(cmd + shlex.quote(login_url(proxy)))
    return parse_response(res.stdout)


def parse_response(text) -> tuple[str, str, dict]:
    """(status, session cookie "NAME=VALUE" or "", headers) of curl's -D output."""
    lines = text.replace("\r", "").split("\n")
    code = lines[0].split()[1] if lines and len(lines[0].split()) > 1 else "000"
    headers, cookie = {}, ""
    for line in lines[1:]:
        if ":" not in line:
            continue
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
        if name.strip().lower() == "set-cookie" and value.strip().startswith(COOKIE + "="):
            cookie = value.strip().split(";", 1)[0]
    return code, cookie, headers


def session_key(name=PROXY) -> bytes:
    """The proxy's session signing key (root reads it on the host), to forge cookies with."""
    text = other(name).check_output("cat %s", KEY_FILE)
    return re.search(r'js_var \$airlock_session_key "([0-9a-f]{64})"', text).group(1).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(key: bytes, body: str) -> str:
    """The signature the proxy puts after the cookie's last |: base64url HMAC-SHA256."""
    return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


def forge(key: bytes, user, issued_ago, seen_ago, sid="forgedforgedforgedforg") -> str:
    """A cookie ("NAME=VALUE") signed with `key` as the proxy signs its own
    (v1|user|session id|issued at|last seen|signature), for `user`, issued `issued_ago` and
    last seen `seen_ago` seconds ago."""
    now = int(time.time())
    body = f"v1|{user}|{sid}|{now - issued_ago}|{now - seen_ago}"
    return f"{COOKIE}={body}|{sign(key, body)}"


def ssh(client, target, user="nosuchuser", source=None, key=None, command="true"):
    """An SSH login attempt from `client` (from `source`, with the private key file `key`
    when given): the command result. The server's answer tells what stopped it, see
    ssh_outcome."""
    # A ban that lands mid-handshake leaves the connection hanging (the reject only reaches an
    # established connection as a soft error): `timeout` ends it.
    cmd = f"timeout 10 ssh {SSH_OPTIONS} "
    if source:
        cmd += f"-b {shlex.quote(source)} "
    if key:
        cmd += f"-i {shlex.quote(key)} -o IdentitiesOnly=yes -o PreferredAuthentications=publickey "
    return client.run(cmd + f"{shlex.quote(user)}@{shlex.quote(target)} {shlex.quote(command)}")


def ssh_outcome(res) -> str:
    """"ok" (logged in), "denied" (sshd answered and refused the login), "refused" (the
    connection was refused: nothing listens, or a fail2ban reject), "timeout" (dropped)."""
    if res.rc == 0:
        return "ok"
    if "Permission denied" in res.stderr:
        return "denied"
    if "Connection refused" in res.stderr:
        return "refused"
    if "timed out" in res.stderr or res.rc == 124:
        return "timeout"
    return "other: " + res.stderr.strip()[-300:]


def banned(jail) -> list[str]:
    """Addresses fail2ban's `jail` holds banned on the proxy now."""
    out = other(PROXY).check_output("fail2ban-client status %s", jail)
    line = next(line for line in out.splitlines() if "Banned IP list:" in line)
    return line.split(":", 1)[1].split()


def fail2ban_log_size() -> int:
    return int(other(PROXY).check_output("stat -c %s /var/log/fail2ban.log"))


def ban_logged(jail, addr, since) -> bool:
    """Whether fail2ban logged a ban of `addr` by `jail` after byte `since` of its log
    (the ban itself may have ended by the time one looks)."""
    log = other(PROXY).check_output("tail -c +%s /var/log/fail2ban.log", str(since + 1))
    return f"[{jail}] Ban {addr}" in log


def wait_for(func, timeout=60, step=1):
    """func's first truthy result within `timeout` seconds, else its last result."""
    deadline = time.time() + timeout
    while True:
        result = func()
        if result or time.time() > deadline:
            return result
        time.sleep(step)
