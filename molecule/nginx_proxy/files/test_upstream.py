#!/usr/bin/env python3
"""Test upstream for the nginx_proxy scenario: NOT OpenHands, a stand-in for it.

Listens on the given ports. A plain request is answered 200 with JSON describing what
arrived (port, path, client address, forwarding headers), so the tests can see what the
proxy forwarded. A websocket upgrade is accepted (101) and every text frame is echoed.
Standard library only.
"""
import base64
import hashlib
import json
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


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
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        sock = self.connection
        while True:
            frame = _read_frame(sock)
            if frame is None:
                break
            opcode, payload = frame
            if opcode == 0x8:  # close
                _send_frame(sock, 0x8, b"")
                break
            if opcode == 0x9:  # ping
                _send_frame(sock, 0xA, payload)
                continue
            if opcode == 0x1:
                reply = json.dumps({"echo": payload.decode(), "port": self.server.server_address[1]})
                _send_frame(sock, 0x1, reply.encode())
        self.close_connection = True


def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_frame(sock):
    head = _recv_exact(sock, 2)
    if head is None:
        return None
    opcode = head[0] & 0x0F
    masked = head[1] & 0x80
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", _recv_exact(sock, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", _recv_exact(sock, 8))[0]
    mask = _recv_exact(sock, 4) if masked else b"\0\0\0\0"
    payload = bytearray(_recv_exact(sock, length) or b"")
    for i in range(len(payload)):
        payload[i] ^= mask[i % 4]
    return opcode, bytes(payload)


def _send_frame(sock, opcode, payload):
    header = bytes([0x80 | opcode])
    if len(payload) < 126:
        header += bytes([len(payload)])
    elif len(payload) < 65536:
        header += bytes([126]) + struct.pack("!H", len(payload))
    else:
        header += bytes([127]) + struct.pack("!Q", len(payload))
    sock.sendall(header + payload)


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
