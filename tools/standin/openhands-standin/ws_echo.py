"""A websocket on a request that http.server already read, for the test stand-ins: the
OpenHands stand-in's event socket (standin.py, in its image) and the nginx_proxy scenario's
test upstream (molecule/nginx_proxy/files/test_upstream.py, copied beside this file).

The websockets library (the distribution's python3-websockets: 10.4 on Debian 12) does the
handshake and the framing, pings and the close included: its sans-I/O protocol object is
handed the request head and the bytes from the socket, and what it answers is written back.
This module is only that I/O.
"""
from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Callable

from websockets.frames import Opcode

try:  # websockets >= 11
    from websockets.server import ServerProtocol
except ImportError:  # Debian 12's 10.4
    from websockets.server import ServerConnection as ServerProtocol


def serve(handler: BaseHTTPRequestHandler, answer: Callable[[str], str]) -> None:
    """Accept the upgrade `handler` holds (101, or the library's refusal) and answer each
    text frame with answer(text), until either side closes."""
    handler.close_connection = True
    ws = ServerProtocol()
    # The protocol object parses the handshake request itself: it is given the head again.
    head = "".join(f"{name}: {value}\r\n" for name, value in handler.headers.items()) + "\r\n"
    ws.receive_data(handler.raw_requestline + head.encode("latin-1"))
    for request in ws.events_received():
        response = ws.accept(request)
        ws.send_response(response)
        handler.log_request(response.status_code)
    while True:
        for data in ws.data_to_send():
            if not data:  # the library ends the connection (closed, failed or refused)
                return
            handler.wfile.write(data)
        data = handler.rfile.read1(65536)
        if data:
            ws.receive_data(data)
        else:
            ws.receive_eof()
        for frame in ws.events_received():
            if frame.opcode is Opcode.TEXT:
                ws.send_text(answer(frame.data.decode("utf-8", "replace")).encode())
