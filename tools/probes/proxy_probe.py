#!/usr/bin/env python3
"""Probe the airlock proxy from a client's point of view and print the findings as JSON.

Used by playbooks/validate.yml (from the controller) and the end-to-end tests. Standard
library only, so it runs on any controller. Each finding is what the client observed:

  http_redirect      status and Location of plain-HTTP GET /           (want 301/308 -> https)
  no_login           status of GET <path> without credentials          (want 401)
  wrong_login        status with a wrong password                      (want 401)
  login              status with the right credentials                 (want 200)
  ws_no_login        status of a websocket upgrade without credentials (want 401)
  ws_login           status of a websocket upgrade with credentials    (want 101)
  login_kind         "basic" (the credentials opened the path themselves) or "session" (the
                     proxy refused Basic on the path, as nginx_proxy's sessions do unless
                     nginx_proxy_basic_auth_api is on: the probe logged in at the login
                     endpoint once, and `login`/`ws_login` are with the session cookie)
  tls                {"TLSv1": bool, "TLSv1_1": bool, "TLSv1_2": bool, "TLSv1_3": bool}: handshake ok?

    proxy_probe.py --host 127.0.0.1 --port 8443 --http-port 8080 --server-name lab \
                   --user admin --password-file .lab/admin.password [--path /] [--ws-path /socket.io/]
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import ssl
import sys
import warnings

# The probe must be able to OFFER TLS 1.0/1.1 to prove the proxy refuses them.
warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*TLSv1")

TLS_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1_1": ssl.TLSVersion.TLSv1_1,
    "TLSv1_2": ssl.TLSVersion.TLSv1_2,
    "TLSv1_3": ssl.TLSVersion.TLSv1_3,
}


def context(version: ssl.TLSVersion | None = None, cafile: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:  # the lab's certificate is self-signed: the probe checks behaviour, not trust
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        # Old protocol versions need the lowest security level to be offered at all.
        if version < ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


SESSION_LOGIN = "/airlock/session"  # where nginx_proxy's login page sends the password


def get(args, path: str, auth: str | None, cookie: str | None = None) -> int:
    conn = http.client.HTTPSConnection(args.host, args.port, timeout=args.timeout,
                                       context=context(cafile=args.cafile))
    headers = {"Host": args.server_name}
    if auth:
        headers["Authorization"] = auth
    if cookie:
        headers["Cookie"] = cookie
    conn.request("GET", path, headers=headers)
    status = conn.getresponse().status
    conn.close()
    return status


def session_cookie(args, auth: str) -> str | None:
    """Log in as the proxy's login page does (POST, the password once as a Basic header):
    the session cookie ("NAME=VALUE") it sets, or None."""
    conn = http.client.HTTPSConnection(args.host, args.port, timeout=args.timeout,
                                       context=context(cafile=args.cafile))
    conn.request("POST", SESSION_LOGIN, headers={"Host": args.server_name, "Authorization": auth,
                                                  "Content-Length": "0"})
    resp = conn.getresponse()
    resp.read()
    cookies = [value.split(";", 1)[0] for name, value in resp.getheaders() if name.lower() == "set-cookie"]
    conn.close()
    return cookies[0] if resp.status == 200 and cookies else None


def websocket(args, auth: str | None, cookie: str | None = None) -> int:
    """Send a websocket upgrade request and return the HTTP status of the answer."""
    raw = socket.create_connection((args.host, args.port), timeout=args.timeout)
    sock = context(cafile=args.cafile).wrap_socket(raw, server_hostname=args.server_name)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {args.ws_path} HTTP/1.1", f"Host: {args.server_name}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if auth:
        lines.append(f"Authorization: {auth}")
    if cookie:
        lines.append(f"Cookie: {cookie}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    status_line = sock.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
    sock.close()
    return int(status_line.split()[1])


def redirect(args) -> dict:
    conn = http.client.HTTPConnection(args.host, args.http_port, timeout=args.timeout)
    conn.request("GET", "/", headers={"Host": args.server_name})
    resp = conn.getresponse()
    out = {"status": resp.status, "location": resp.getheader("Location", "")}
    conn.close()
    return out


def handshake(args, version: ssl.TLSVersion) -> bool:
    try:
        ctx = context(version, args.cafile)
    except (ValueError, ssl.SSLError):
        return False  # this client cannot even offer the version
    try:
        with socket.create_connection((args.host, args.port), timeout=args.timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=args.server_name):
                return True
    except (ssl.SSLError, OSError):
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description="Probe the airlock proxy; print JSON findings.")
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--http-port", type=int, default=80)
    ap.add_argument("--server-name", default="localhost", help="Host header and SNI")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-file", required=True, help="file holding the password (never on the command line)")
    ap.add_argument("--path", default="/")
    ap.add_argument("--ws-path", default="/socket.io/?EIO=4&transport=websocket")
    ap.add_argument("--cafile", help="verify the certificate against this CA bundle")
    ap.add_argument("--timeout", type=float, default=10)
    args = ap.parse_args()
    with open(args.password_file, encoding="utf-8") as fh:
        password = fh.read().strip()
    good, bad = basic(args.user, password), basic(args.user, password + "-wrong")
    findings = {
        "http_redirect": redirect(args),
        "no_login": get(args, args.path, None),
        "wrong_login": get(args, args.path, bad),
        "login": get(args, args.path, good),
        "ws_no_login": websocket(args, None),
        "ws_login": websocket(args, good),
        "login_kind": "basic",
        "tls": {name: handshake(args, v) for name, v in TLS_VERSIONS.items()},
    }
    if findings["login"] == 401:
        cookie = session_cookie(args, good)
        if cookie:
            findings.update(login=get(args, args.path, None, cookie), ws_login=websocket(args, None, cookie),
                            login_kind="session")
    json.dump(findings, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
