#!/usr/bin/env python3
"""Test upstream for the nginx_proxy scenario: NOT OpenHands, a stand-in for it.

Listens on the given ports. A plain request is answered 200 with JSON describing what
arrived (port, path, client address, forwarding headers), so the tests can see what the
proxy forwarded. A websocket upgrade is accepted (101) and every text frame is echoed.
Standard library, and the websockets library (the distribution's python3-websockets) for
the websocket.
"""
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The stand-ins' websocket (tools/standin/openhands-standin/ws_echo.py, installed beside this
# file by the scenario's prepare): the websockets library.
from ws_echo import serve


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: journald would get every request
        pass

    def _describe(self):
        return {
            "port": self.server.server_address[1],
            "path": self.path,
            "method": self.command,
            "peer": self.client_address[0],
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }

    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self._websocket()
        body = json.dumps(self._describe()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def _websocket(self):
        port = self.server.server_address[1]
        serve(self, lambda text: json.dumps({"echo": text, "port": port}))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET


def main(ports):
    servers = [Server(("0.0.0.0", int(p)), Handler) for p in ports]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main(sys.argv[1:] or ["3000"])
