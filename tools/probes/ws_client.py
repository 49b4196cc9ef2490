#!/usr/bin/env python3
"""Websocket test client (the websockets library, the distribution's python3-websockets):
opens wss://HOST:PORT/PATH (ws:// with --scheme ws), optionally with a Basic login or a
Cookie header (a session), prints the HTTP status line of the handshake's answer and, after
a 101, the echo of one text frame. Exit code 0 only for 101 and a matching echo. The
Molecule scenarios install it on their client hosts: nginx_proxy (through the proxy) and
server_tier (from the proxy host straight to the app)."""
import argparse
import asyncio
import base64
import ssl
import sys

import websockets.exceptions

try:  # websockets >= 13: the asyncio implementation
    from websockets.asyncio.client import connect
    HEADERS = "additional_headers"
except ImportError:  # older releases (Debian 12 ships 10.4): the legacy one
    from websockets.client import connect
    HEADERS = "extra_headers"


async def exchange(args) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    headers = {}
    if args.user:
        token = base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    if args.cookie:
        headers["Cookie"] = args.cookie
    try:
        tls = {"ssl": ctx} if args.scheme == "wss" else {}
        async with connect(f"{args.scheme}://{args.host}:{args.port}{args.path}", open_timeout=10,
                           close_timeout=2, **tls, **{HEADERS: headers}) as ws:
            print("HTTP/1.1 101 Switching Protocols")
            await ws.send(args.message)
            data = await asyncio.wait_for(ws.recv(), 10)
    except websockets.exceptions.InvalidHandshake as exc:
        # The answer was not a 101: its status (legacy: status_code; newer: response).
        status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
        print(f"HTTP/1.1 {status}" if status else f"handshake failed: {exc}")
        return 1
    text = data if isinstance(data, str) else data.decode(errors="replace")
    print(text)
    return 0 if args.message in text else 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("path")
    ap.add_argument("--scheme", choices=("wss", "ws"), default="wss")
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--cookie", help="Cookie header value (NAME=VALUE)")
    ap.add_argument("--message", default="hello airlock")
    return asyncio.run(exchange(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
