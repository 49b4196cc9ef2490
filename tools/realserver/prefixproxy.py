#!/usr/bin/env python3
"""A minimal stand-in for the airlock proxy's sandbox route, for tests on one Docker host.

    /runtime/<port>/<path>  ->  http://<upstream>:<port>/<path>   (websockets included)

Like the nginx route (roles/nginx_proxy, docs/proxy.md): HTTP Basic login required, except
for the addresses given with --internal (the OpenHands server calling its own sandboxes);
401 otherwise; the Authorization header is not passed on; anything not under /runtime/<port>
is 404. One request per connection (Connection: close), so a connection that logged in
once cannot carry a second, unchecked request; an upgraded connection is spliced both ways.
Python standard library only. Not TLS: the tests' URL pattern is http://<address>:<port>.

    prefixproxy.py --listen 172.17.0.1:18000 --upstream 127.0.0.1 --login user:pass --internal 172.17.0.5
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import re

ROUTE = re.compile(r"^/runtime/([0-9]{1,5})(.*)$")


def answer(code: int, reason: str, extra: str = "") -> bytes:
    body = f"{code} {reason}\n".encode()
    return (f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{extra}\r\n").encode() + body


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except Exception:  # noqa: BLE001
            pass


class Proxy:
    def __init__(self, upstream: str, login: str, internal: set[str]):
        self.upstream = upstream
        self.expected = "Basic " + base64.b64encode(login.encode()).decode()
        self.internal = internal

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")[:-2]
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            writer.write(answer(400, "Bad Request"))
            writer.close()
            return
        headers = [h for h in lines[1:] if ":" in h]
        auth = next((h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("authorization:")), "")
        route = ROUTE.match(target)
        if not route:
            writer.write(answer(404, "Not Found"))
        elif peer not in self.internal and auth != self.expected:
            writer.write(answer(401, "Unauthorized", 'WWW-Authenticate: Basic realm="test"\r\n'))
        else:
            port, rest = int(route.group(1)), route.group(2) or "/"
            if not rest.startswith("/"):
                rest = "/" + rest
            upgrade = any(h.lower().startswith("upgrade:") for h in headers)
            keep = [h for h in headers if not h.lower().startswith(("authorization:", "connection:", "host:"))]
            keep.insert(0, f"Host: {self.upstream}:{port}")
            keep.append("Connection: Upgrade" if upgrade else "Connection: close")
            try:
                up_reader, up_writer = await asyncio.open_connection(self.upstream, port)
            except OSError:
                writer.write(answer(502, "Bad Gateway"))
                await writer.drain()
                writer.close()
                return
            up_writer.write((f"{method} {rest} {version}\r\n" + "\r\n".join(keep) + "\r\n\r\n").encode("latin-1"))
            await up_writer.drain()
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
            return
        await writer.drain()
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="address:port")
    parser.add_argument("--upstream", default="127.0.0.1")
    parser.add_argument("--login", required=True, help="user:password")
    parser.add_argument("--internal", action="append", default=[], help="address allowed without login")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    proxy = Proxy(args.upstream, args.login, set(args.internal))
    server = await asyncio.start_server(proxy.handle, host, int(port))
    print(f"prefixproxy listening on {args.listen}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
