#!/usr/bin/env python3
"""Websocket test client (standard library): opens wss://HOST:PORT/PATH, optionally
with a Basic login or a Cookie header (a session), prints the HTTP status line of the handshake and, after a 101, the
echo of one text frame. Exit code 0 only for 101 and a matching echo."""
import argparse
import base64
import os
import socket
import ssl
import struct
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("path")
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--cookie", help="Cookie header value (NAME=VALUE)")
    ap.add_argument("--message", default="hello airlock")
    args = ap.parse_args()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((args.host, args.port), timeout=10)
    sock = ctx.wrap_socket(raw, server_hostname=args.host)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {args.path} HTTP/1.1",
        f"Host: {args.host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if args.user:
        token = base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    if args.cookie:
        lines.append(f"Cookie: {args.cookie}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    print(status)
    if " 101 " not in status + " ":
        return 1
    payload = args.message.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    hdr = sock.recv(2)
    length = hdr[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", sock.recv(2))[0]
    data = b""
    while len(data) < length:
        data += sock.recv(length - len(data))
    print(data.decode())
    return 0 if args.message in data.decode() else 1


if __name__ == "__main__":
    sys.exit(main())
