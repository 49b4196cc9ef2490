"""Helpers for the end-to-end checks of the sandbox URLs the server hands to browsers.

OpenHands V1 gives the browser one URL per published sandbox port (agent server, VS Code,
workers), built from the sandbox URL pattern. Behind airlock's proxy each must be
`<public URL>/runtime/<host port>` and must answer through the proxy only with the login.
The tests reach the proxy at its published loopback port (`base`), so a handed-out URL is
asked for at `base` + the part after the public URL.
"""
from __future__ import annotations

import base64
import ssl
import time
import urllib.error
import urllib.request

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect


def _context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False  # the lab's self-signed certificate
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def basic(login: tuple[str, str] | None) -> dict:
    if not login:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()}


def check_prefix(url: str, public: str, host_port: int) -> None:
    """The URL is <public>/runtime/<host port>, alone or followed by / or ?."""
    prefix = f"{public}/runtime/{host_port}"
    assert url == prefix or url.startswith((prefix + "/", prefix + "?")), f"{url} does not start with {prefix}"


def via_proxy(url: str, public: str, base: str) -> str:
    assert url.startswith(public + "/"), f"{url} is not under the public URL {public}"
    return base + url[len(public):]


def http(url: str, login: tuple[str, str] | None = None, headers: dict | None = None,
         timeout: float = 20) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={**basic(login), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=_context()) as resp:
            return resp.status, resp.read(4096)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(4096)


def ws_url(url: str) -> str:
    return "wss://" + url.split("://", 1)[1] if url.startswith("https://") else "ws://" + url.split("://", 1)[1]


def ws_messages(url: str, login: tuple[str, str] | None, send: str | None = None, want: int = 1,
                timeout: float = 30) -> list[str]:
    """Open the websocket at `url` (http(s) or ws(s)), send `send` if given, and return the
    first `want` text messages (fewer if the server stops sending within `timeout`)."""
    out: list[str] = []
    with connect(ws_url(url), additional_headers=basic(login), ssl=_context() if "https:" in url or "wss:" in url
                 else None, open_timeout=timeout, close_timeout=5, max_size=None) as ws:
        if send is not None:
            ws.send(send)
        deadline = time.monotonic() + timeout
        while len(out) < want and time.monotonic() < deadline:
            try:
                msg = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            out.append(msg if isinstance(msg, str) else msg.decode("utf-8", "replace"))
    return out


def ws_status(url: str, login: tuple[str, str] | None = None, timeout: float = 20) -> int:
    """The HTTP status of the websocket handshake: 101 when it opened."""
    try:
        with connect(ws_url(url), additional_headers=basic(login), ssl=_context() if "https:" in url or "wss:" in url
                     else None, open_timeout=timeout, close_timeout=5):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def refused(check, attempts: int = 12, wait: float = 6.5) -> int:
    """Status of a request the proxy should refuse. Failed logins share a slow bucket
    (nginx_proxy_login_fail_rate): a 429 is the limiter answering before the login is
    checked, so wait for the bucket and ask again until the login check answers."""
    status = 0
    for _ in range(attempts):
        status = check()
        if status != 429:
            return status
        time.sleep(wait)
    return status
