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

from websockets.frames import Opcode

try:  # websockets >= 11
    from websockets.server import ServerProtocol
except ImportError:  # older releases (Debian 12 ships 10.4)
    from websockets.server import ServerConnection as ServerProtocol


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
        # The websockets library does the handshake and the framing, pings and the close
        # included: its sans-I/O protocol object is handed the request the HTTP server read
        # and the bytes from the socket, and what it answers is written back.
        self.close_connection = True
        ws = ServerProtocol()
        # The protocol object starts by parsing the handshake request itself: the head again.
        head = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items()) + "\r\n"
        ws.receive_data(self.raw_requestline + head.encode("latin-1"))
        for request in ws.events_received():
            ws.send_response(ws.accept(request))  # 101, or the library's refusal
        while True:
            for data in ws.data_to_send():
                if not data:  # the library ends the connection (closed, failed or refused)
                    return
                self.wfile.write(data)
            data = self.rfile.read1(65536)
            if data:
                ws.receive_data(data)
            else:
                ws.receive_eof()
            for frame in ws.events_received():
                if frame.opcode is Opcode.TEXT:
                    reply = json.dumps({"echo": frame.data.decode(), "port": self.server.server_address[1]})
                    ws.send_text(reply.encode())


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
